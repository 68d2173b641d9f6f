"""The `llm` resource's OpenAI-compatible path: one call, its retries with backoff, and many calls on threads,
each answer journaled the moment it arrives.

What errors mean is decided here: a timeout, a dropped connection or a retryable status is tried again (after
the server's Retry-After when it gives one); a 400/422 naming response_format or json_schema is a server
without structured output; anything else fails the call at once. Errors are never cached.
"""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, ContextManager

from resources import call_journal
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage, backoff_delay, parse_retry_after

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
STRUCTURED_ERROR_STATUS = {400, 422}
STRUCTURED_ERROR_WORDS = ("response_format", "json_schema")


class LLMCallError(RuntimeError):
    """Calls that still failed after the last retry; their answers are not cached."""


class StructuredOutputUnsupported(LLMCallError):
    """The server rejected the request's response_format (it has no structured output)."""


class Retryable(Exception):
    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


def call_once(client, request: ChatRequest, key: str, slot: Callable[[], ContextManager], timeout_s: float
              ) -> ChatResult:
    """One chat completion through the `openai` client, holding an endpoint slot (`slot()`) while in flight."""
    import openai

    started = time.monotonic()
    try:
        with slot():
            response = client.chat.completions.create(**request.body())
    except openai.APITimeoutError as exc:
        raise Retryable(f"timed out after {timeout_s:.0f} s") from exc
    except openai.APIConnectionError as exc:
        raise Retryable(f"connection error: {exc}") from exc
    except openai.APIStatusError as exc:
        if exc.status_code in RETRYABLE_STATUS:
            raise Retryable(f"HTTP {exc.status_code}", parse_retry_after(dict(exc.response.headers))) from exc
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


def with_retries(send: Callable[[], ChatResult], model: str, *, max_retries: int, backoff_base_s: float,
                 backoff_cap_s: float, usage: Usage, lock: threading.Lock,
                 log: Callable[[str], None] | None) -> ChatResult:
    """`send()` until it answers, at most `max_retries` more times after a retryable error."""
    rng = None  # made on the first retry: seeding one from os.urandom costs ~8 us, paid per call otherwise
    for attempt in range(max_retries + 1):
        try:
            return send()
        except Retryable as exc:
            if attempt == max_retries:
                raise LLMCallError(
                    f"{model}: still failing after {max_retries + 1} attempts ({exc}); "
                    "check the server, the rate limits or [llm] max_retries / timeout_s"
                ) from exc
            rng = rng or random.Random()
            delay = backoff_delay(attempt, backoff_base_s, backoff_cap_s, exc.retry_after, rng)
            with lock:
                usage.retries += 1
            if log:
                log(f"{model}: {exc}; retry {attempt + 1}/{max_retries} in {delay:.2f} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


def complete_on_threads(requests: list[ChatRequest], todo: dict[str, list[int]], results: list, usage: Usage,
                        failures: list[str], *, call: Callable[[ChatRequest, str], ChatResult],
                        row: Callable[[ChatRequest, ChatResult], dict], store_rows: Callable[[list[dict]], None],
                        journal_dir: Path, max_concurrency: int, flush_every: int, flush_interval_s: float) -> None:
    """Send each key of `todo` once, `max_concurrency` in flight; fill `results`, count `usage`, collect failures.

    Each answer's cache row is journaled before anyone waits on it, so a killed run loses only the calls in
    flight; `store_rows` folds them into the cache table once `flush_every` wait and `flush_interval_s` has
    passed since the last fold, and at the end.
    """
    journal = call_journal.JournalWriter(journal_dir)
    changed = threading.Condition()
    pending: list[dict] = []
    outstanding = len(todo)
    fold_at = max(1, flush_every)

    def one(key: str) -> None:
        nonlocal outstanding
        request = requests[todo[key][0]]
        result = answer_row = failure = None
        try:
            result = call(request, key)
            journal.append(stored_row := row(request, result))  # durable before anyone waits on it
            answer_row = stored_row
        except LLMCallError as exc:
            failure = str(exc)
        finally:
            # The bookkeeping happens here rather than in a waiting thread woken for every answer: on a
            # busy interpreter each such wake-up is a GIL hand-over (measured: ~10% more CPU per call).
            with changed:
                outstanding -= 1
                if failure is not None:
                    failures.append(failure)
                elif answer_row is not None:  # neither: an unexpected error, raised by the caller below
                    for i in todo[key]:
                        results[i] = result
                    usage.add(result)
                    pending.append(answer_row)
                if not outstanding or len(pending) == fold_at:  # once per crossing
                    changed.notify()

    def take() -> list[dict]:
        nonlocal pending
        with changed:
            rows, pending = pending, []
        return rows

    stored = False
    try:
        with ThreadPoolExecutor(max_workers=max_concurrency) as pool:
            futures = [pool.submit(one, key) for key in todo]
            try:
                last_fold = time.monotonic()
                with changed:
                    while outstanding:
                        changed.wait_for(lambda: not outstanding or len(pending) >= fold_at)
                        # Enough answers wait; fold once the interval has passed (or everything has answered).
                        changed.wait_for(lambda: not outstanding,
                                         timeout=max(0.0, last_fold + flush_interval_s - time.monotonic()))
                        if outstanding:
                            changed.release()
                            try:  # the journal already holds these; folding only shares them with other readers
                                store_rows(take())
                            finally:
                                changed.acquire()
                            last_fold = time.monotonic()
                for future in futures:
                    future.result()  # anything but a failed call (LLMCallError) is a bug: raise it
            finally:
                store_rows(take())  # whatever arrived is kept, even when the run is interrupted
        stored = True
    finally:
        journal.close(remove=stored)  # kept if the last write failed: the next run folds it
