"""The one chat-call layer: OpenAI-compatible or in-process, cached in DuckDB, retried, metered.

`complete_many` answers a list of requests in order. Cached answers are read first and only the
rest are sent, with at most `max_concurrency` in flight. Each answer is appended to a journal the
moment it arrives (`call_journal`) and folded into the cache table in groups, so a run killed
halfway resumes where it stopped and pays again only for the calls that were in flight; errors are
never cached. After every call has finished, failures raise one error naming them.

Structured output: a request with a `response_format` is sent with it. The first uncached one per
endpoint and model is sent alone; a server that rejects it (HTTP 400/422 naming response_format or
json_schema) is recorded in `llm_structured_unsupported`, and from then on (this run and later ones)
such requests go to that endpoint in their free-text form (`ChatRequest.free_text()`, the key they had
before structured output). The in-process backend answers a verdict format by choice scoring.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable

import dagster as dg
from pydantic import Field, PrivateAttr

from resources import call_journal
from resources.api_slots import ProviderSlots
from resources.llm_batch import complete_in_batches
from resources.local_lm import LocalLMResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib import costs, paths
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage, backoff_delay, parse_retry_after

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
OPENAI, LOCAL = "openai", "local"


def runs_in_process(provider: str) -> bool:
    """The one place a provider string chooses the backend: the in-process transformers model (`local`) or
    an OpenAI-compatible server (`openai`: OpenAI, Azure, vLLM, Ollama, llama.cpp). Everything else asks
    this (or `LLMResource.in_process`), so a new backend is added here and nowhere else."""
    if provider not in (OPENAI, LOCAL):
        raise ValueError(f"provider {provider!r}: use {OPENAI!r} or {LOCAL!r}")
    return provider == LOCAL


class LLMCallError(RuntimeError):
    """Calls that still failed after the last retry; their answers are not cached."""


class StructuredOutputUnsupported(LLMCallError):
    """The server rejected the request's response_format (it has no structured output)."""


STRUCTURED_ERROR_STATUS = {400, 422}
STRUCTURED_ERROR_WORDS = ("response_format", "json_schema")


class _Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class LLMResource(dg.ConfigurableResource):
    """Every chat call of the platform (rewrites, judging, API-model generation)."""

    provider: str = Field("openai", description="openai (any OpenAI-compatible server) or local")
    base_url: str | None = Field(None, description="OpenAI-compatible base URL; empty: OPENAI_BASE_URL or OpenAI")
    api_key: str | None = Field(None, description="Set through EnvVar('OPENAI_API_KEY'); never logged or stored")
    local: LocalLMResource | None = Field(None, description="The in-process model when provider = local")
    warehouse: WarehouseResource
    max_concurrency: int = 8
    timeout_s: float = 120.0
    max_retries: int = 6
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 60.0
    flush_every: int = Field(25, description="Local: answers generated per chunk stored; remote: fold the journal "
                                             "into the cache table once this many answers wait...")
    flush_interval_s: float = Field(10.0, description="...and this long has passed since the last fold (the "
                                                      "journal already keeps each answer; folds only share them)")
    prices_per_million_tokens: dict[str, dict[str, float]] = Field(default_factory=dict)
    budget_usd: float = Field(0.0, description="No batch is sent that could take total spend past this; 0: none")
    max_concurrency_per_provider: int = Field(
        0, description="Calls in flight to this endpoint across all runs and processes; 0: no shared limit")
    slots_dir: str = Field("", description="Where the shared slots live; empty: WARMTH_HOME/locks")
    batch_min_requests: int = Field(
        0, description="Send this many or more uncached calls through the OpenAI Batch API; 0: never")
    batch_max_requests: int = Field(50_000, gt=0, description="Requests per batch (the API's limit)")
    batch_poll_s: float = 30.0
    batch_poll_cap_s: float = 600.0
    batch_timeout_s: float = Field(26 * 3600, description="Give up waiting (the batch stays recorded)")

    _client = PrivateAttr(default=None)
    _slots = PrivateAttr(default=None)

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
        return (self.base_url or "https://api.openai.com/v1").rstrip("/")

    def key(self, request: ChatRequest) -> str:
        return request.key(self.provider, self.endpoint)

    # -- cache ----------------------------------------------------------------------------
    def cached(self, keys: list[str]) -> dict[str, ChatResult]:
        if not keys:
            return {}
        with self.warehouse.get_connection() as conn:
            rows = conn.execute(
                "SELECT request_key, response_text, finish_reason, prompt_tokens, completion_tokens, latency_s, model "
                "FROM llm_calls WHERE request_key IN (SELECT unnest(?))", [keys]
            ).fetchall()
        return {r[0]: ChatResult(*r, cached=True) for r in rows}

    def _row(self, request: ChatRequest, result: ChatResult) -> dict:
        # request_json records the key's inputs (salt and calibration included), not `request.body()`.
        body = {"messages": request.message_dicts(), "temperature": request.temperature,
                "max_tokens": request.max_tokens, "seed": request.seed, "top_p": request.top_p,
                "cache_salt": request.cache_salt}
        if request.response_format:
            body["response_format"] = request.response_format_dict()
        if request.calibration:
            body["calibration"] = request.calibration_dict()
        return {
            "request_key": result.key, "provider": self.provider, "endpoint": self.endpoint,
            "model": request.model, "template_version": request.template_version,
            "request_json": json.dumps(body, ensure_ascii=False),
            "response_text": result.text, "finish_reason": result.finish_reason,
            "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "latency_s": result.latency_s, "response_format": request.response_format or None,
        }

    def store(self, pairs: list[tuple[ChatRequest, ChatResult]]) -> None:
        """Answers into the call cache (the Batch API mode writes through this)."""
        self._store_rows([self._row(q, r) for q, r in pairs])

    def _store_rows(self, rows: list[dict]) -> None:
        if not rows:
            return
        import pandas as pd

        # One set-based insert from a DataFrame: DuckDB's executemany goes row by row (~2 ms a row).
        # Columns: every key of any row (a journal of older code has no response_format).
        frame = pd.DataFrame(rows, columns=list(dict.fromkeys(k for row in rows for k in row)))
        with self.warehouse.get_connection() as conn:
            conn.register("_answers", frame)
            conn.execute("INSERT OR IGNORE INTO llm_calls BY NAME SELECT * FROM _answers")
            conn.unregister("_answers")

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

            # Our own retry loop (below) counts, logs and bounds retries; the client's is off.
            self._client = openai.OpenAI(api_key=self.api_key or "not-needed", base_url=self.base_url or None,
                                         timeout=self.timeout_s, max_retries=0)
        return self._client

    def _provider_slot(self):
        if not self.max_concurrency_per_provider:
            return contextlib.nullcontext()
        if self._slots is None:
            folder = Path(self.slots_dir) if self.slots_dir else paths.warmth_home() / "locks"
            self._slots = ProviderSlots(folder, self.endpoint, self.max_concurrency_per_provider)
        return self._slots.slot()

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

    def _call_openai_once(self, request: ChatRequest, key: str) -> ChatResult:
        import openai

        started = time.monotonic()
        try:
            with self._provider_slot():
                response = self._openai().chat.completions.create(**request.body())
        except openai.APITimeoutError as exc:
            raise _Retryable(f"timed out after {self.timeout_s:.0f} s") from exc
        except openai.APIConnectionError as exc:
            raise _Retryable(f"connection error: {exc}") from exc
        except openai.APIStatusError as exc:
            if exc.status_code in RETRYABLE_STATUS:
                raise _Retryable(f"HTTP {exc.status_code}", parse_retry_after(dict(exc.response.headers))) from exc
            said = f"{exc.message} {exc.body}".lower()
            if (request.response_format and exc.status_code in STRUCTURED_ERROR_STATUS
                    and any(word in said for word in STRUCTURED_ERROR_WORDS)):
                raise StructuredOutputUnsupported(f"HTTP {exc.status_code}: {exc.message}") from exc
            raise LLMCallError(f"{request.model}: HTTP {exc.status_code} (not retryable): {exc.message}") from exc
        choice = response.choices[0]
        usage = response.usage
        return ChatResult(
            key=key, text=choice.message.content or "", finish_reason=choice.finish_reason or "",
            prompt_tokens=usage.prompt_tokens if usage else 0, completion_tokens=usage.completion_tokens if usage else 0,
            latency_s=time.monotonic() - started, model=request.model,
        )

    def _call_with_retries(self, request: ChatRequest, key: str, usage: Usage, lock: threading.Lock,
                           log: Callable[[str], None] | None) -> ChatResult:
        rng = random.Random()
        for attempt in range(self.max_retries + 1):
            try:
                return self._call_openai_once(request, key)
            except _Retryable as exc:
                if attempt == self.max_retries:
                    raise LLMCallError(
                        f"{request.model}: still failing after {self.max_retries + 1} attempts ({exc}); "
                        "check the server, the rate limits or [llm] max_retries / timeout_s"
                    ) from exc
                delay = backoff_delay(attempt, self.backoff_base_s, self.backoff_cap_s, exc.retry_after, rng)
                with lock:
                    usage.retries += 1
                if log:
                    log(f"{request.model}: {exc}; retry {attempt + 1}/{self.max_retries} in {delay:.2f} s")
                time.sleep(delay)
        raise AssertionError("unreachable")

    # -- structured output ----------------------------------------------------------------
    def structured_unsupported(self) -> dict[str, str]:
        """Models on this endpoint recorded as rejecting response_format -> the server's error."""
        rows = self.warehouse.query_df(
            "SELECT model, error FROM llm_structured_unsupported WHERE endpoint = ?", [self.endpoint])
        return dict(zip(rows["model"], rows["error"]))

    def _record_unsupported(self, model: str, error: str) -> None:
        with self.warehouse.get_connection() as conn:
            conn.execute("INSERT INTO llm_structured_unsupported (endpoint, model, detected_on, error) "
                         "VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                         [self.endpoint, model, datetime.date.today(), error])

    def _as_sent(self, requests: list[ChatRequest]) -> list[ChatRequest]:
        """The requests as this endpoint takes them: the free-text form where structured output was rejected."""
        if self.in_process or not any(r.response_format for r in requests):
            return requests
        rejected = self.structured_unsupported()
        return [r.free_text() if r.response_format and r.model in rejected else r for r in requests]

    def _probe_structured(self, requests, todo, results, usage, failures, log) -> bool:
        """Send the first uncached structured request of each model alone; False when the server rejected a
        response_format (recorded). Each probe's answer or error is taken out of `todo` like any other."""
        probes: dict[str, str] = {}
        for key, idx in todo.items():
            if requests[idx[0]].response_format:
                probes.setdefault(requests[idx[0]].model, key)
        accepted = True
        for model, key in probes.items():
            request = requests[todo[key][0]]
            self.check_budget(costs.pending_usd([request], self.prices_per_million_tokens), 1, [model])
            try:
                result = self._call_with_retries(request, key, usage, threading.Lock(), log)
            except StructuredOutputUnsupported as exc:
                self._record_unsupported(model, str(exc))
                if log:
                    log(f"{self.endpoint} ({model}) rejects structured output ({exc}); recorded in "
                        "llm_structured_unsupported: its requests go in free-text form from now on")
                accepted = False
                continue
            except LLMCallError as exc:
                failures.append(str(exc))
                del todo[key]
                continue
            self.store([(request, result)])
            for i in todo.pop(key):
                results[i] = result
            usage.add(result)
        return accepted

    def complete_many(self, requests: list[ChatRequest], *, log: Callable[[str], None] | None = None
                      ) -> tuple[list[ChatResult], Usage]:
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
        if todo and not self.in_process:
            # First the structured probe (budget-checked alone): a rejection turns the requests into their
            # free-text forms, whose keys (those of before) may all be cached, and nothing else is sent.
            if not self._probe_structured(requests, todo, results, usage, failures, log):
                return self.complete_many(requests, log=log)  # now recorded: sent in free-text form
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
        lock = threading.Lock()
        journal = call_journal.JournalWriter(self.journal_dir)

        def call(key: str) -> tuple[ChatResult, dict]:
            request = requests[todo[key][0]]
            result = self._call_with_retries(request, key, usage, lock, log)
            row = self._row(request, result)
            journal.append(row)  # durable before anyone waits on it
            return result, row

        pending: list[dict] = []
        last_flush = time.monotonic()
        stored = False
        try:
            with ThreadPoolExecutor(max_workers=self.max_concurrency) as pool:
                futures = {pool.submit(call, key): key for key in todo}
                try:
                    for future in as_completed(futures):
                        key = futures[future]
                        try:
                            result, row = future.result()
                        except LLMCallError as exc:
                            failures.append(str(exc))
                            continue
                        for i in todo[key]:
                            results[i] = result
                        usage.add(result)
                        pending.append(row)
                        # The journal already holds every answer; these group writes only keep the
                        # cache current for other readers without holding the DuckDB lock per call.
                        if len(pending) >= self.flush_every and time.monotonic() - last_flush >= self.flush_interval_s:
                            self._store_rows(pending)
                            pending, last_flush = [], time.monotonic()
                finally:
                    self._store_rows(pending)  # whatever arrived is kept, even when the run is interrupted
            stored = True
        finally:
            journal.close(remove=stored)  # kept if the last write failed: the next run folds it

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
