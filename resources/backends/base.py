"""What the call layer asks of a provider: `Backend`, the one protocol every backend answers to.

The layer (`resources/llm.py`, `LLMResource`) owns what every backend shares: the call cache and the journal,
the budget, the per-endpoint slots across processes, the usage counts. A backend owns only what differs: where
it answers (`endpoint`, part of every request key), how a request is sent (`as_sent`), and `answer`, which
answers the requests the cache did not hold, through what the layer gives it (`self.layer`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Callable, ClassVar

from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage

if TYPE_CHECKING:
    from resources.llm import LLMResource

Log = Callable[[str], None] | None


class Backend(ABC):
    """One provider behind the call layer; built by the layer (`resources.backends.backend_for`) for its settings."""

    # Answers in this process (no server, no key, no price): no endpoint slots, nothing to budget.
    in_process: ClassVar[bool] = False

    def __init__(self, layer: "LLMResource", endpoint: str):
        self.layer = layer
        self.provider = layer.provider
        self.endpoint = endpoint  # where it answers: part of every request key, the endpoint slots and records

    def key(self, request: ChatRequest) -> str:
        """The request's cache key: the provider and the endpoint with everything that can change the answer."""
        return request.key(self.provider, self.endpoint)

    def as_sent(self, requests: list[ChatRequest]) -> list[ChatRequest]:
        """The requests as this backend takes them (refusing what it cannot honour); keyed and cached as sent."""
        return requests

    def require_key(self, models: list[str], chosen_by: str = "") -> None:
        """Refuse, before anything is sent, calls that need a key when none is set."""

    def run_metadata(self) -> dict:
        """What a run's metadata should say about how this backend answered (beside usage and cost)."""
        return {}

    def client(self):
        """The `openai` client (files, fine-tuning, batches): only an OpenAI-compatible backend has one."""
        raise ValueError("this needs an OpenAI-compatible provider ([llm] provider = openai)")

    @abstractmethod
    def answer(self, requests: list[ChatRequest], todo: dict[str, list[int]], results: list[ChatResult | None],
               usage: Usage, failures: list[str], log: Log) -> bool:
        """Answer the uncached requests: `todo` maps each key to the indices of its requests (sent once). Fill
        `results`, count `usage`, store what is worth caching through the layer, add each failed call's error to
        `failures` (the layer raises them together). False: the requests must be asked again as `as_sent` now
        gives them (a server just found to reject structured output); the layer starts over."""
