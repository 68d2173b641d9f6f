"""What ends a batch of calls early, and what its retries add up to.

A batch stops when its run stops (SIGTERM, SIGINT, Dagster's Terminate: the interrupt reaches the waiting
thread) or when the endpoint is plainly dead (calls in a row fail to connect, a retry included). Once stopped,
no call starts and every retry's backoff ends at once. A call to an endpoint that needs a key, with none set,
is refused before the batch begins (`require_key`).
"""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlparse

from resources.llm_errors import EndpointUnreachable, LLMCallError, MissingAPIKey, NoConnection, Stopped

__all__ = ["BatchStop", "RetryLog", "Stopped", "require_key"]

# Hosts that answer nothing without a key: a call there with none set is refused before it is sent.
KEYED_HOSTS = ("api.openai.com", ".openai.azure.com")
LOCAL_ALTERNATIVE = ("or answer without a key: [llm] provider = \"local\" with [llm] local_model = a [[models]] slug "
                     "(in process), or [llm] base_url = a server of your own (vLLM: `warmth serve`)")


def require_key(endpoint: str, api_key: str | None, models, chosen_by: str = "") -> None:
    """MissingAPIKey when `endpoint` needs a key and `api_key` is empty; nothing has been sent then."""
    if api_key:
        return
    host = urlparse(endpoint).hostname or ""
    if not any(host == h or (h.startswith(".") and host.endswith(h)) for h in KEYED_HOSTS):
        return
    names = ", ".join(sorted(set(models))) or "the model"
    raise MissingAPIKey(
        f"OPENAI_API_KEY is not set, and {names} ({chosen_by or 'the model of these requests'}) is called at "
        f"{endpoint}, which needs it; nothing was sent. Set OPENAI_API_KEY where the code location runs "
        f"(then reload it), {LOCAL_ALTERNATIVE}.")


class BatchStop:
    """What ends one batch early, shared by its threads: the run stopping (an interrupt) or an endpoint that
    `unreachable_after` calls in a row failed to reach twice. Once set, no call starts and retry sleeps end."""

    def __init__(self, endpoint: str, unreachable_after: int):
        self.endpoint = endpoint
        self.unreachable_after = max(1, unreachable_after)
        self.event = threading.Event()
        self.error: LLMCallError | None = None  # why, when the endpoint (not the run) ended the batch
        self._lock = threading.Lock()
        self._no_connection = 0  # calls in a row whose retry could not connect either

    @property
    def stopped(self) -> bool:
        return self.event.is_set()

    def stop(self, error: LLMCallError | None = None) -> None:
        with self._lock:
            if not self.event.is_set():
                self.error = error
                self.event.set()

    def sleep(self, seconds: float) -> None:
        """A retry's backoff; ends at once when the batch stops."""
        if self.event.wait(seconds):
            raise Stopped()

    def answered(self) -> None:
        self._no_connection = 0

    def no_connection(self, exc: NoConnection, attempt: int) -> None:
        """A first failure may be a blip; a call that fails to connect again counts towards the verdict."""
        if attempt == 0:
            return
        with self._lock:
            self._no_connection += 1
            dead = self._no_connection >= self.unreachable_after
        if dead:
            self.stop(EndpointUnreachable(
                f"{self.endpoint} is unreachable ({exc}): {self.unreachable_after} calls in a row could not "
                "connect, so the batch stopped; answers already received are kept. Is the server running? "
                "Check [llm] base_url (or OPENAI_BASE_URL) and the network."))


@dataclass
class RetryLog:
    """The retries of one batch, summed up in one line; each retry itself is logged at DEBUG."""

    calls: int = 0  # calls retried at least once
    retries: int = 0
    waited_s: float = 0.0
    reasons: Counter = field(default_factory=Counter)

    def add(self, reason: str, first: bool, delay: float) -> None:
        self.calls += first
        self.retries += 1
        self.waited_s += delay
        self.reasons[reason] += 1

    def summary(self) -> str:
        why = ", ".join(f"{reason} x{n}" for reason, n in self.reasons.most_common())
        return (f"{self.calls} calls retried, {self.retries} retries ({why}), "
                f"{self.waited_s:.1f} s of backoff in all")
