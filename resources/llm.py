"""The one chat-call layer: every provider a backend behind it, every answer cached in DuckDB and metered.

`complete_many` answers a list of requests in order. Cached answers are read first and only the rest go to
the backend (`resources/backends/`: OpenAI-compatible servers, the in-process model, the demo's rules; chosen
by the provider string in `backends.BACKENDS`, nowhere else). Each answer is journaled the moment it arrives
(`call_journal`) and folded into the cache table in groups, so a run killed halfway resumes where it stopped and
pays again only for the calls that were in flight; errors are never cached. After every call has finished,
failures raise one error naming them.

What the layer keeps is what every backend shares: the cache (`llm_cache`), the journal, the budget, the
per-endpoint slots across processes (`api_slots`), the usage counts. A backend keeps what differs: its endpoint
(part of every key), the form its requests are sent in, and how the uncached ones are answered.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable

import dagster as dg
from pydantic import Field, PrivateAttr

from resources import call_journal, llm_cache, llm_stop, llm_structured
from resources.api_slots import ProviderSlots
from resources.backends import Backend, backend_class
from resources.llm_errors import EndpointUnreachable, LLMCallError, MissingAPIKey, StructuredOutputUnsupported
from resources.local_lm import LocalLMResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib import costs, paths
from warmth_assets.lib.config import LLMSettings, OperationsSettings, setting, shared_values
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage, answer_columns

__all__ = ["EndpointUnreachable", "LLMCallError", "LLMResource", "LOCAL", "MissingAPIKey", "OPENAI",
           "StructuredOutputUnsupported"]

OPENAI, LOCAL = "openai", "local"


class LLMResource(dg.ConfigurableResource):
    """Every chat call of the platform (rewrites, judging, API-model generation)."""

    provider: str = setting(LLMSettings, "provider")
    base_url: str | None = Field(None, description="OpenAI-compatible base URL; empty: OPENAI_BASE_URL or OpenAI")
    api_key: str | None = Field(None, description="Set through EnvVar('OPENAI_API_KEY'); never logged or stored")
    vllm_api_key: str | None = Field(
        None, description="The key of [serving] vllm_base_url's server (required there beyond loopback): set through "
                          "EnvVar('VLLM_API_KEY'); never logged, stored or part of a cache key")
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

    _backend = PrivateAttr(default=None)
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
        retries, timeouts and the cross-process limit per endpoint. Backend (its client) and slots are rebuilt
        for the new endpoint."""
        copy = self.model_copy(update=changes)
        copy._backend = None
        copy._slots = None
        return copy

    # -- identity -------------------------------------------------------------------------
    @property
    def backend(self) -> Backend:
        """What answers for this resource's provider (built once per resource, on first use)."""
        if self._backend is None:
            self._backend = backend_class(self.provider)(self)
        return self._backend

    @property
    def in_process(self) -> bool:
        return backend_class(self.provider).in_process

    @property
    def endpoint(self) -> str:
        return self.backend.endpoint

    @property
    def run_metadata(self) -> dict:
        """What the backend says about how it answered (in process: the dtype, and how an adapter was applied)."""
        return self.backend.run_metadata()

    def require_key(self, models, chosen_by: str = "") -> None:
        """Refuse, before anything is sent, calls to an endpoint that needs a key when none is set."""
        self.backend.require_key(models, chosen_by)

    def key(self, request: ChatRequest) -> str:
        return self.backend.key(request)

    def answer_columns(self, requests: list[ChatRequest], results: list[ChatResult], *, text: str = "response",
                       only: tuple[str, ...] | None = None) -> dict:
        """The answer columns a stage stores (lib/llm_requests.answer_columns), keyed and named as this resource."""
        return answer_columns(requests, results, key=self.key, provider=self.provider, text=text, only=only)

    # -- cache ----------------------------------------------------------------------------
    def cached(self, keys: list[str]) -> dict[str, ChatResult]:
        return llm_cache.cached(self.warehouse, keys)

    def store(self, pairs: list[tuple[ChatRequest, ChatResult]]) -> None:
        """Answers into the call cache (the Batch API mode writes through this)."""
        self.store_rows([self.row(q, r) for q, r in pairs])

    def row(self, request: ChatRequest, result: ChatResult) -> dict:
        """The `llm_calls` row of an answer (what the journal holds until it is folded in)."""
        return llm_cache.call_row(request, result, self.provider, self.endpoint)

    def store_rows(self, rows: list[dict]) -> None:
        llm_cache.insert_rows(self.warehouse, rows)

    @property
    def journal_dir(self) -> Path:
        return self.warehouse.journal_dir

    def fold_journals(self) -> int:
        """Store the answers of runs that died before writing them to `llm_calls` (see call_journal)."""
        orphans = call_journal.collect_orphans(self.journal_dir)
        if not orphans.files:
            return 0
        stored = False
        try:
            self.store_rows(orphans.rows)
            stored = True
        finally:
            orphans.release(remove=stored)  # a failed write keeps the files for the next run
        return len(orphans.rows)

    # -- what backends share -----------------------------------------------------------------
    def client(self):
        """The `openai` client itself (files, fine-tuning, batches), configured like every chat call."""
        return self.backend.client()

    def provider_slot(self, stop: llm_stop.BatchStop | None = None):
        """One of the endpoint's call slots shared by all processes ([operations] max_api_concurrency_per_provider),
        held while a call is in flight; given up at once when `stop` ends the batch."""
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

    # -- structured output ----------------------------------------------------------------
    def structured_unsupported(self) -> dict[str, str]:
        """Models on this endpoint recorded as rejecting response_format -> the server's error."""
        return llm_structured.rejecting_models(self.warehouse, self.endpoint)

    def complete_many(self, requests: list[ChatRequest], *, log: Callable[[str], None] | None = None,
                      chosen_by: str = "") -> tuple[list[ChatResult], Usage]:
        """Answers to `requests`, in order. `chosen_by` names the setting that chose their model (for the
        error when a key is missing); `log` takes the one-line notes of the batch (spend, retries)."""
        backend = self.backend
        requests = backend.as_sent(requests)
        usage = Usage()
        keys = [backend.key(r) for r in requests]
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
            backend.require_key([requests[idx[0]].model for idx in todo.values()], chosen_by)
            if not backend.answer(requests, todo, results, usage, failures, log):
                return self.complete_many(requests, log=log, chosen_by=chosen_by)  # asked again as now sent
        if failures:
            usage.errors = len(failures)
            raise LLMCallError(
                f"{len(failures)} of {uncached} calls failed (answers of the others are cached, a re-run "
                f"sends only the failed ones); first: {failures[0]}"
            )
        return results, usage  # type: ignore[return-value]
