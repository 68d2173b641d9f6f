"""OpenAI-compatible servers (OpenAI, Azure, vLLM, Ollama, llama.cpp): calls on threads with retries
(`llm_remote`), the Batch API from `[llm] batch_min_requests` uncached calls (`llm_batch`), structured output
probed and recorded per endpoint and model (`llm_structured`); a key required where the host needs one, the
budget checked before anything is sent."""

from __future__ import annotations

import threading

from resources import llm_remote, llm_stop, llm_structured
from resources.api_slots import SlotWaitCancelled
from resources.backends.base import Backend, Log
from resources.llm_batch import complete_in_batches
from warmth_assets.lib import costs
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage

OPENAI_API = "https://api.openai.com/v1"


class OpenAICompatible(Backend):
    def __init__(self, layer):
        super().__init__(layer, (layer.base_url or OPENAI_API).rstrip("/"))
        self._client = None

    def client(self):
        if self._client is None:
            import openai

            # Our own retry loop (llm_remote.with_retries) counts, logs and bounds retries; the client's is off.
            self._client = openai.OpenAI(api_key=self.layer.api_key or "not-needed",
                                         base_url=self.layer.base_url or None, timeout=self.layer.timeout_s,
                                         max_retries=0)
        return self._client

    def require_key(self, models, chosen_by: str = "") -> None:
        llm_stop.require_key(self.endpoint, self.layer.api_key, models, chosen_by)

    def as_sent(self, requests: list[ChatRequest]) -> list[ChatRequest]:
        """The free-text form where this endpoint's model rejects structured output; a choice calibration refused
        (a served model gives no label scores: its answer must not be cached under a calibrated key)."""
        if any(r.calibration for r in requests):
            raise ValueError("choice calibration needs the label scores of the in-process backend (provider = "
                             f"local); {self.provider} cannot honour it")
        if not any(r.response_format for r in requests):
            return requests
        return llm_structured.as_sent(requests, self.layer.structured_unsupported())

    def answer(self, requests, todo, results, usage, failures, log) -> bool:
        # First the structured probe (budget-checked alone): a rejection turns the requests into their free-text
        # forms, whose keys (those of before) may all be cached, and nothing else is sent.
        if not self._probe_structured(requests, todo, results, usage, failures, log):
            return False
        if not todo:
            return True
        layer, prices = self.layer, self.layer.prices_per_million_tokens
        pending = [requests[idx[0]] for idx in todo.values()]
        layer.check_budget(costs.pending_usd(pending, prices), len(pending), [r.model for r in pending])
        if log and prices:
            log(f"{len(pending)} uncached calls, at most ${costs.pending_usd(pending, prices):,.2f}")
        if layer.batch_min_requests and len(todo) >= layer.batch_min_requests:
            self._complete_batch(requests, todo, results, usage, failures, log)
        else:
            self._complete_threads(requests, todo, results, usage, failures, log)
        return True

    # -- one call, its retries ------------------------------------------------------------
    def _call_with_retries(self, request: ChatRequest, key: str, usage: Usage, lock: threading.Lock,
                           stop: llm_stop.BatchStop, retry_log: llm_stop.RetryLog) -> ChatResult:
        layer = self.layer

        def send() -> ChatResult:
            try:
                return llm_remote.call_once(self.client(), request, key, lambda: layer.provider_slot(stop),
                                            layer.timeout_s)
            except SlotWaitCancelled:
                raise llm_stop.Stopped() from None

        return llm_remote.with_retries(
            send, request.model, max_retries=layer.max_retries, backoff_base_s=layer.backoff_base_s,
            backoff_cap_s=layer.backoff_cap_s, usage=usage, lock=lock, stop=stop, retry_log=retry_log)

    def _batch_stop(self) -> llm_stop.BatchStop:
        return llm_stop.BatchStop(self.endpoint, self.layer.unreachable_after)

    @staticmethod
    def _after_batch(stop: llm_stop.BatchStop, retry_log: llm_stop.RetryLog, log: Log, *, raising: bool = True
                     ) -> None:
        """One line for the batch's retries (each retry is a DEBUG line); the endpoint's error if it ended it."""
        if log and retry_log.retries:
            log(retry_log.summary())
        if raising and stop.error is not None:
            raise stop.error

    # -- the three ways of sending ---------------------------------------------------------
    def _probe_structured(self, requests, todo, results, usage, failures, log) -> bool:
        stop, retry_log, layer = self._batch_stop(), llm_stop.RetryLog(), self.layer
        try:
            answered = llm_structured.probe(
                requests, todo, results, usage, failures, endpoint=self.endpoint,
                check_budget=lambda request: layer.check_budget(
                    costs.pending_usd([request], layer.prices_per_million_tokens), 1, [request.model]),
                call=lambda request, key: self._call_with_retries(request, key, usage, threading.Lock(), stop,
                                                                  retry_log),
                store=layer.store, record=lambda model, error: llm_structured.record_rejection(
                    layer.warehouse, self.endpoint, model, error), log=log)
        except BaseException:
            self._after_batch(stop, retry_log, log, raising=False)
            raise
        self._after_batch(stop, retry_log, log)
        return answered

    def _complete_threads(self, requests, todo, results, usage, failures, log) -> None:
        lock, stop, retry_log, layer = threading.Lock(), self._batch_stop(), llm_stop.RetryLog(), self.layer
        try:
            llm_remote.complete_on_threads(
                requests, todo, results, usage, failures,
                call=lambda request, key: self._call_with_retries(request, key, usage, lock, stop, retry_log),
                row=layer.row, store_rows=layer.store_rows, journal_dir=layer.journal_dir,
                max_concurrency=layer.max_concurrency, flush_every=layer.flush_every,
                flush_interval_s=layer.flush_interval_s, stop=stop, stop_grace_s=layer.stop_grace_s)
        except BaseException:
            self._after_batch(stop, retry_log, log, raising=False)  # the interrupt (or bug) goes on as it is
            raise
        self._after_batch(stop, retry_log, log)

    def _complete_batch(self, requests, todo, results, usage, failures, log) -> None:
        layer = self.layer
        answers, failed = complete_in_batches(
            self.client(), layer.warehouse, self.endpoint, {key: requests[idx[0]] for key, idx in todo.items()},
            store=layer.store, chunk=layer.batch_max_requests, poll_s=layer.batch_poll_s,
            poll_cap_s=layer.batch_poll_cap_s, timeout_s=layer.batch_timeout_s, log=log)
        for key, answer in answers.items():
            for i in todo[key]:
                results[i] = answer
            usage.add(answer)
        failures.extend(failed)
