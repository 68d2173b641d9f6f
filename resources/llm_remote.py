"""The `llm` resource's OpenAI-compatible path: one call, its retries with backoff, and many calls on threads,
each answer journaled the moment it arrives.

What errors mean is decided here: a timeout, a dropped connection or a retryable status is tried again (after
the server's Retry-After when it gives one); a 400/422 naming response_format or json_schema is a server
without structured output; anything else fails the call at once. Errors are never cached.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from pathlib import Path
from typing import Callable, ContextManager

from resources import call_journal
from resources.llm_errors import (EndpointUnreachable, LLMCallError, MissingAPIKey, NoConnection, Retryable,
                                  Stopped, StructuredOutputUnsupported)
from resources.llm_stop import BatchStop, RetryLog
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage, backoff_delay, parse_retry_after

__all__ = ["EndpointUnreachable", "LLMCallError", "MissingAPIKey", "StructuredOutputUnsupported", "call_once",
           "complete_on_threads", "with_retries"]

RETRYABLE_STATUS = {408, 409, 429, 500, 502, 503, 504}
STRUCTURED_ERROR_STATUS = {400, 422}
STRUCTURED_ERROR_WORDS = ("response_format", "json_schema")

logger = logging.getLogger(__name__)  # one line per retry, at DEBUG; the batch's summary goes to the run's log


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
        raise NoConnection(f"connection error: {exc.__cause__ or exc}") from exc
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


def _reason(exc: Retryable) -> str:
    text = str(exc)
    return "connection error" if isinstance(exc, NoConnection) else text.split(" after ")[0]


def with_retries(send: Callable[[], ChatResult], model: str, *, max_retries: int, backoff_base_s: float,
                 backoff_cap_s: float, usage: Usage, lock: threading.Lock, stop: BatchStop,
                 retry_log: RetryLog) -> ChatResult:
    """`send()` until it answers, at most `max_retries` more times after a retryable error; `Stopped` when the
    batch stops first (nothing more is sent, a backoff ends at once)."""
    rng = None  # made on the first retry: seeding one from os.urandom costs ~8 us, paid per call otherwise
    for attempt in range(max_retries + 1):
        if stop.stopped:
            raise Stopped()
        try:
            result = send()
            stop.answered()
            return result
        except Retryable as exc:
            if isinstance(exc, NoConnection):
                stop.no_connection(exc, attempt)
            if attempt == max_retries:
                raise LLMCallError(
                    f"{model}: still failing after {max_retries + 1} attempts ({exc}); "
                    "check the server, the rate limits or [llm] max_retries / timeout_s"
                ) from exc
            rng = rng or random.Random()
            delay = backoff_delay(attempt, backoff_base_s, backoff_cap_s, exc.retry_after, rng)
            with lock:
                usage.retries += 1
                retry_log.add(_reason(exc), attempt == 0, delay)
            logger.debug("%s: %s; retry %d/%d in %.2f s", model, exc, attempt + 1, max_retries, delay)
            stop.sleep(delay)
    raise AssertionError("unreachable")


def complete_on_threads(requests: list[ChatRequest], todo: dict[str, list[int]], results: list, usage: Usage,
                        failures: list[str], *, call: Callable[[ChatRequest, str], ChatResult],
                        row: Callable[[ChatRequest, ChatResult], dict], store_rows: Callable[[list[dict]], None],
                        journal_dir: Path, max_concurrency: int, flush_every: int, flush_interval_s: float,
                        stop: BatchStop | None = None, stop_grace_s: float = 5.0) -> None:
    """Send each key of `todo` once, `max_concurrency` in flight; fill `results`, count `usage`, collect failures.

    Each answer's cache row is journaled before anyone waits on it, so a killed run loses only the calls in
    flight; `store_rows` folds them into the cache table once `flush_every` wait and `flush_interval_s` has
    passed since the last fold, and at the end.

    Stopping: when the run is interrupted here (SIGTERM, SIGINT, Dagster's Terminate), or `stop` is set (an
    unreachable endpoint), no further call starts and retry sleeps end; calls already in flight get
    `stop_grace_s` to answer (they are paid for), then what arrived is stored and the interrupt goes on.
    The callers are daemon threads: one still waiting on a server cannot hold the process after that.
    """
    stop = stop or BatchStop("", 1 << 30)
    journal = call_journal.JournalWriter(journal_dir)
    changed = threading.Condition()
    pending: list[dict] = []
    keys = iter(todo)
    errors: list[BaseException] = []
    live = min(max(1, max_concurrency), len(todo))  # callers not yet finished
    fold_at = max(1, flush_every)
    abandoned = False  # set when the grace ran out: the last caller closes the journal (kept for the next run)

    def one(key: str) -> None:
        request = requests[todo[key][0]]
        result = answer_row = failure = None
        try:
            result = call(request, key)
            journal.append(stored_row := row(request, result))  # durable before anyone waits on it
            answer_row = stored_row
        except LLMCallError as exc:
            failure = str(exc)
        except Stopped:
            pass  # not sent (or not retried): the next run sends it
        except BaseException as exc:  # a bug: the other calls go on, the error is raised at the end
            errors.append(exc)
        # The bookkeeping happens here rather than in a waiting thread woken for every answer: on a
        # busy interpreter each such wake-up is a GIL hand-over (measured: ~10% more CPU per call).
        with changed:
            if failure is not None:
                failures.append(failure)
            elif answer_row is not None:
                for i in todo[key]:
                    results[i] = result
                usage.add(result)
                pending.append(answer_row)
                if len(pending) == fold_at:  # once per crossing
                    changed.notify()

    def caller() -> None:
        nonlocal live
        while not stop.stopped:
            with changed:
                key = next(keys, None)
            if key is None:
                break
            one(key)
        with changed:
            live -= 1
            if not live:
                changed.notify()
                if abandoned:
                    journal.close(remove=False)

    def take() -> list[dict]:
        nonlocal pending
        with changed:
            rows, pending = pending, []
        return rows

    threads = [threading.Thread(target=caller, name=f"llm-call-{i}", daemon=True) for i in range(live)]
    stored = False
    try:
        for thread in threads:
            thread.start()
        last_fold = time.monotonic()
        with changed:
            while live:
                changed.wait_for(lambda: not live or len(pending) >= fold_at)
                # Enough answers wait; fold once the interval has passed (or every caller has finished).
                changed.wait_for(lambda: not live, timeout=max(0.0, last_fold + flush_interval_s - time.monotonic()))
                if live:
                    changed.release()
                    try:  # the journal already holds these; folding only shares them with other readers
                        store_rows(take())
                    finally:
                        changed.acquire()
                    last_fold = time.monotonic()
        if errors:
            raise errors[0]  # anything but a failed call (LLMCallError) is a bug
        stored = True
    except BaseException:
        stop.stop()  # the run is stopping: nothing more is sent, retry sleeps end
        with changed:
            changed.wait_for(lambda: not live, timeout=stop_grace_s)  # answers in flight are paid for
            abandoned = bool(live)
        raise
    finally:
        folded = False
        try:
            store_rows(take())  # whatever arrived is kept, even when the run is interrupted
            folded = True
        finally:
            with changed:
                if not abandoned:
                    journal.close(remove=stored and folded)  # otherwise kept: the next run folds it
