"""The one chat-call layer: OpenAI-compatible or in-process, cached in DuckDB, retried, metered.

`complete_many` answers a list of requests in order. Cached answers are read first and only the
rest are sent, with at most `max_concurrency` in flight. Each answer is appended to a journal the
moment it arrives (`call_journal`) and folded into the cache table in groups, so a run killed
halfway resumes where it stopped and pays again only for the calls that were in flight; errors are
never cached. After every call has finished, failures raise one error naming them.

Structured output: a request with a `response_format` is sent with it; a server that rejects it is
recorded and sent the free-text form from then on (`llm_structured`). The in-process backend answers a
verdict format by choice scoring. The parts: `llm_cache` (the `llm_calls` table), `llm_remote` (one call,
retries, threads), `llm_structured`, `llm_batch` (the Batch API), `local_lm` (in process).
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Callable

import dagster as dg
from pydantic import Field, PrivateAttr

from resources import call_journal, llm_cache, llm_remote, llm_stop, llm_structured
from resources.api_slots import ProviderSlots, SlotWaitCancelled
from resources.llm_batch import complete_in_batches
from resources.llm_errors import EndpointUnreachable, LLMCallError, MissingAPIKey, StructuredOutputUnsupported
from resources.local_lm import LocalLMResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib import costs, paths
from warmth_assets.lib.config import LLMSettings, OperationsSettings, setting, shared_values
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage

__all__ = ["EndpointUnreachable", "LLMCallError", "LLMResource", "LOCAL", "MissingAPIKey", "OPENAI",
           "StructuredOutputUnsupported", "runs_in_process"]

OPENAI, LOCAL = "openai", "local"
OPENAI_API = "https://api.openai.com/v1"


def runs_in_process(provider: str) -> bool:
    """The one place a provider string chooses the backend: the in-process transformers model (`local`) or
    an OpenAI-compatible server (`openai`: OpenAI, Azure, vLLM, Ollama, llama.cpp). Everything else asks
    this (or `LLMResource.in_process`), so a new backend is added here and nowhere else."""
    if provider not in (OPENAI, LOCAL):
        raise ValueError(f"provider {provider!r}: use {OPENAI!r} or {LOCAL!r}")
    return provider == LOCAL


class LLMResource(dg.ConfigurableResource):
    """Every chat call of the platform (rewrites, judging, API-model generation)."""

    provider: str = setting(LLMSettings, "provider")
    base_url: str | None = Field(None, description="OpenAI-compatible base URL; empty: OPENAI_BASE_URL or OpenAI")
    api_key: str | None = Field(None, description="Set through EnvVar('OPENAI_API_KEY'); never logged or stored")
    local: LocalLMResource | None = Field(None, description="The in-process model when provider = local")
    warehouse: WarehouseResource
    max_concurrency: int = setting(LLMSettings, "max_concurrency")
    timeout_s: float = setting(LLMSettings, "timeout_s")
    max_retries: int = setting(LLMSettings, "max_retries")
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    flush_every: int = Field(25, description="Local: answers generated per chunk stored; remote: fold the journal "
                                             "into the cache table once this many answers wait...")
    flush_interval_s: float = Field(10.0, description="...and this long has passed since the last fold (the "
                                                      "journal already keeps each answer; folds only share them)")
    # Built bare (tests, benchmarks), the resource knows no prices and no shared limit: from_settings gives both.
    prices_per_million_tokens: dict[str, dict[str, float]] = Field(default_factory=dict)
    budget_usd: float = setting(OperationsSettings, "budget_usd")
    max_concurrency_per_provider: int = Field(
        0, description="Calls in flight to this endpoint across all runs and processes; 0: no shared limit")
    slots_dir: str = Field("", description="Where the shared slots live; empty: WARMTH_HOME/locks")
    batch_min_requests: int = setting(LLMSettings, "batch_min_requests")
    batch_max_requests: int = Field(50_000, gt=0, description="Requests per batch (the API's limit)")
    batch_poll_s: float = setting(LLMSettings, "batch_poll_s")
    batch_poll_cap_s: float = 600.0
    batch_timeout_s: float = Field(26 * 3600, description="Give up waiting (the batch stays recorded)")
    unreachable_after: int = Field(
        3, ge=1, description="End a batch once this many calls in a row failed to connect on a retry too "
                             "(refused, no route, unknown host); rate limits and 5xx keep their retries")
    stop_grace_s: float = Field(
        5.0, ge=0, description="When a run stops, how long calls already in flight may still answer (they are "
                               "paid for: journaled); no new call starts")

    _client = PrivateAttr(default=None)
    _slots = PrivateAttr(default=None)

    @classmethod
    def from_settings(cls, llm: LLMSettings, operations: OperationsSettings, *, warehouse: WarehouseResource,
                      **overrides) -> "LLMResource":
        """The resource [llm] and the spending limits of [operations] describe; `overrides` set what the
        settings do not hold or the environment changes (provider, base URL, key, the in-process model)."""
        values = {**shared_values(llm, cls), "budget_usd": operations.budget_usd,
                  "max_concurrency_per_provider": operations.max_api_concurrency_per_provider}
        return cls(**{**values, "warehouse": warehouse, **overrides})

    def with_backend(self, **changes) -> "LLMResource":
        """This resource answering through another backend (`changes`), everything else kept: the cache,
        retries, timeouts and the cross-process limit per endpoint. Client and slots are rebuilt for the
        new endpoint."""
        copy = self.model_copy(update=changes)
        copy._client = None
        copy._slots = None
        return copy

    # -- identity -------------------------------------------------------------------------
    @property
    def in_process(self) -> bool:
        return runs_in_process(self.provider)

    @property
    def endpoint(self) -> str:
        if self.in_process:
            assert self.local is not None
            return f"local:{self.local.identity}"
        return (self.base_url or OPENAI_API).rstrip("/")

    def require_key(self, models, chosen_by: str = "") -> None:
        """Refuse, before anything is sent, calls to an endpoint that needs a key when none is set."""
        if not self.in_process:
            llm_stop.require_key(self.endpoint, self.api_key, models, chosen_by)

    def key(self, request: ChatRequest) -> str:
        return request.key(self.provider, self.endpoint)

    # -- cache ----------------------------------------------------------------------------
    def cached(self, keys: list[str]) -> dict[str, ChatResult]:
        return llm_cache.cached(self.warehouse, keys)

    def store(self, pairs: list[tuple[ChatRequest, ChatResult]]) -> None:
        """Answers into the call cache (the Batch API mode writes through this)."""
        self._store_rows([self._row(q, r) for q, r in pairs])

    def _row(self, request: ChatRequest, result: ChatResult) -> dict:
        return llm_cache.call_row(request, result, self.provider, self.endpoint)

    def _store_rows(self, rows: list[dict]) -> None:
        llm_cache.insert_rows(self.warehouse, rows)

    @property
    def journal_dir(self) -> Path:
        return Path(f"{self.warehouse.database}.journal")

    def fold_journals(self) -> int:
        """Store the answers of runs that died before writing them to `llm_calls` (see call_journal)."""
        orphans = call_journal.collect_orphans(self.journal_dir)
        if not orphans.files:
            return 0
        stored = False
        try:
            self._store_rows(orphans.rows)
            stored = True
        finally:
            orphans.release(remove=stored)  # a failed write keeps the files for the next run
        return len(orphans.rows)

    # -- calls ----------------------------------------------------------------------------
    def client(self):
        """The `openai` client itself (files, fine-tuning, batches), configured like every chat call."""
        if self.in_process:
            raise ValueError("this needs an OpenAI-compatible provider ([llm] provider = openai)")
        return self._openai()

    def _openai(self):
        if self._client is None:
            import openai

            # Our own retry loop (llm_remote.with_retries) counts, logs and bounds retries; the client's is off.
            self._client = openai.OpenAI(api_key=self.api_key or "not-needed", base_url=self.base_url or None,
                                         timeout=self.timeout_s, max_retries=0)
        return self._client

    def _provider_slot(self, stop: llm_stop.BatchStop | None = None):
        if not self.max_concurrency_per_provider:
            return contextlib.nullcontext()
        if self._slots is None:
            folder = Path(self.slots_dir) if self.slots_dir else paths.warmth_home() / "locks"
            self._slots = ProviderSlots(folder, self.endpoint, self.max_concurrency_per_provider)
        return self._slots.slot(cancel=stop.event if stop else None)

    def spent_usd(self) -> float:
        """What every answered call in the cache cost, at today's prices."""
        usage = self.warehouse.query_df(
            "SELECT model, sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens "
            "FROM llm_calls WHERE provider = 'openai' GROUP BY model")
        return costs.spent_usd(usage, self.prices_per_million_tokens)

    def check_budget(self, pending: float, calls: int, models: list[str] = ()) -> None:
        """Raise BudgetExceeded before sending when `pending` could take spend past the budget, or when
        a model has no price (it would otherwise count as free and slip past the budget)."""
        if self.budget_usd:
            costs.check_budget(self.budget_usd, self.spent_usd(), pending, calls,
                               costs.unpriced(models, self.prices_per_million_tokens))

    def _call_with_retries(self, request: ChatRequest, key: str, usage: Usage, lock: threading.Lock,
                           stop: llm_stop.BatchStop, retry_log: llm_stop.RetryLog) -> ChatResult:
        def send() -> ChatResult:
            try:
                return llm_remote.call_once(self._openai(), request, key, lambda: self._provider_slot(stop),
                                            self.timeout_s)
            except SlotWaitCancelled:
                raise llm_stop.Stopped() from None

        return llm_remote.with_retries(
            send, request.model, max_retries=self.max_retries, backoff_base_s=self.backoff_base_s,
            backoff_cap_s=self.backoff_cap_s, usage=usage, lock=lock, stop=stop, retry_log=retry_log)

    def _batch_stop(self) -> llm_stop.BatchStop:
        return llm_stop.BatchStop(self.endpoint, self.unreachable_after)

    @staticmethod
    def _after_batch(stop: llm_stop.BatchStop, retry_log: llm_stop.RetryLog,
                     log: Callable[[str], None] | None, *, raising: bool = True) -> None:
        """One line for the batch's retries (each retry is a DEBUG line); the endpoint's error if it ended it."""
        if log and retry_log.retries:
            log(retry_log.summary())
        if raising and stop.error is not None:
            raise stop.error

    # -- structured output ----------------------------------------------------------------
    def structured_unsupported(self) -> dict[str, str]:
        """Models on this endpoint recorded as rejecting response_format -> the server's error."""
        return llm_structured.rejecting_models(self.warehouse, self.endpoint)

    def _as_sent(self, requests: list[ChatRequest]) -> list[ChatRequest]:
        if self.in_process or not any(r.response_format for r in requests):
            return requests
        return llm_structured.as_sent(requests, self.structured_unsupported())

    def _probe_structured(self, requests, todo, results, usage, failures, log) -> bool:
        stop, retry_log = self._batch_stop(), llm_stop.RetryLog()
        try:
            answered = self._probe_structured_with(requests, todo, results, usage, failures, log, stop, retry_log)
        except BaseException:
            self._after_batch(stop, retry_log, log, raising=False)
            raise
        self._after_batch(stop, retry_log, log)
        return answered

    def _probe_structured_with(self, requests, todo, results, usage, failures, log, stop, retry_log) -> bool:
        return llm_structured.probe(
            requests, todo, results, usage, failures, endpoint=self.endpoint,
            check_budget=lambda request: self.check_budget(
                costs.pending_usd([request], self.prices_per_million_tokens), 1, [request.model]),
            call=lambda request, key: self._call_with_retries(request, key, usage, threading.Lock(), stop, retry_log),
            store=self.store, record=lambda model, error: llm_structured.record_rejection(
                self.warehouse, self.endpoint, model, error), log=log)

    def complete_many(self, requests: list[ChatRequest], *, log: Callable[[str], None] | None = None,
                      chosen_by: str = "") -> tuple[list[ChatResult], Usage]:
        """Answers to `requests`, in order. `chosen_by` names the setting that chose their model (for the
        error when a key is missing); `log` takes the one-line notes of the batch (spend, retries)."""
        if not self.in_process and any(r.calibration for r in requests):
            raise ValueError("choice calibration needs the label scores of the in-process backend (provider = "
                             f"local); {self.provider} cannot honour it")
        requests = self._as_sent(requests)
        usage = Usage()
        keys = [self.key(r) for r in requests]
        self.fold_journals()  # a killed run's answers count as cached
        hits = self.cached(sorted(set(keys)))
        results: list[ChatResult | None] = [None] * len(requests)
        todo: dict[str, list[int]] = {}
        for i, key in enumerate(keys):
            if key in hits:
                results[i] = hits[key]
                usage.add(hits[key])
            else:
                todo.setdefault(key, []).append(i)  # identical requests are sent once

        failures: list[str] = []
        uncached = len(todo)
        if todo:
            self.require_key([requests[idx[0]].model for idx in todo.values()], chosen_by)
        if todo and not self.in_process:
            # First the structured probe (budget-checked alone): a rejection turns the requests into their
            # free-text forms, whose keys (those of before) may all be cached, and nothing else is sent.
            if not self._probe_structured(requests, todo, results, usage, failures, log):
                return self.complete_many(requests, log=log, chosen_by=chosen_by)  # now recorded: sent in free-text form
        if todo and not self.in_process:
            pending = [requests[idx[0]] for idx in todo.values()]
            self.check_budget(costs.pending_usd(pending, self.prices_per_million_tokens), len(pending),
                              [r.model for r in pending])
            if log and self.prices_per_million_tokens:
                log(f"{len(pending)} uncached calls, at most ${costs.pending_usd(pending, self.prices_per_million_tokens):,.2f}")
        if todo:
            if self.in_process:
                self._complete_local(requests, todo, results, usage)
            elif self.batch_min_requests and len(todo) >= self.batch_min_requests:
                self._complete_batch(requests, todo, results, usage, failures, log)
            else:
                self._complete_remote(requests, todo, results, usage, failures, log)
        if failures:
            usage.errors = len(failures)
            raise LLMCallError(
                f"{len(failures)} of {uncached} calls failed (answers of the others are cached, a re-run "
                f"sends only the failed ones); first: {failures[0]}"
            )
        return results, usage  # type: ignore[return-value]

    def _complete_remote(self, requests, todo, results, usage, failures, log) -> None:
        lock, stop, retry_log = threading.Lock(), self._batch_stop(), llm_stop.RetryLog()
        try:
            llm_remote.complete_on_threads(
                requests, todo, results, usage, failures,
                call=lambda request, key: self._call_with_retries(request, key, usage, lock, stop, retry_log),
                row=self._row, store_rows=self._store_rows, journal_dir=self.journal_dir,
                max_concurrency=self.max_concurrency, flush_every=self.flush_every,
                flush_interval_s=self.flush_interval_s, stop=stop, stop_grace_s=self.stop_grace_s)
        except BaseException:
            self._after_batch(stop, retry_log, log, raising=False)  # the interrupt (or bug) goes on as it is
            raise
        self._after_batch(stop, retry_log, log)

    def _complete_batch(self, requests, todo, results, usage, failures, log) -> None:
        answers, failed = complete_in_batches(
            self.client(), self.warehouse, self.endpoint, {key: requests[idx[0]] for key, idx in todo.items()},
            store=self.store, chunk=self.batch_max_requests,
            poll_s=self.batch_poll_s, poll_cap_s=self.batch_poll_cap_s, timeout_s=self.batch_timeout_s, log=log)
        for key, answer in answers.items():
            for i in todo[key]:
                results[i] = answer
            usage.add(answer)
        failures.extend(failed)

    def _complete_local(self, requests, todo, results, usage) -> None:
        assert self.local is not None, "provider = local needs a local model ([llm] local_model)"
        keys = list(todo)
        # Chunks are whole batches: a chunk of 25 at batch size 8 would leave a batch of 1 behind.
        step = self.local.batch_size * max(1, -(-self.flush_every // self.local.batch_size))
        for start in range(0, len(keys), step):
            chunk = keys[start:start + step]
            answers = self.local.generate([requests[todo[k][0]] for k in chunk])
            pairs = []
            for key, answer in zip(chunk, answers):
                answer.key = key
                for i in todo[key]:
                    results[i] = answer
                usage.add(answer)
                pairs.append((requests[todo[key][0]], answer))
            self.store(pairs)
