"""OpenAI Batch API mode of the `llm` resource: submit, poll, collect, into the same call cache.

For large jobs (judging a whole study) the Batch API halves the price and lifts rate limits, at the
cost of latency (up to its 24 h window). Each chunk of uncached requests becomes one batch, recorded
in `llm_batches` by the set of request keys it holds, so a run killed while waiting polls the same
batch again instead of paying for a second one. Answers go to `llm_calls` like any other; failed
lines are reported and not cached, so the next run sends exactly those again.
"""

from __future__ import annotations

import hashlib
import io
import json
import random
import time
from typing import TYPE_CHECKING, Callable

from warmth_assets.lib.llm_requests import ChatRequest, ChatResult

if TYPE_CHECKING:
    from resources.llm import LLMResource

TERMINAL = {"completed", "failed", "expired", "cancelled"}
COLLECTED = "collected"  # ours: the batch's output was read into the cache


def batch_line(key: str, request: ChatRequest) -> dict:
    body = {"model": request.model, "messages": request.message_dicts(), "temperature": request.temperature,
            "max_tokens": request.max_tokens}
    if request.seed is not None:
        body["seed"] = request.seed
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.response_format:
        body["response_format"] = request.response_format_dict()
    return {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": body}


def parse_output_line(line: dict, model: str) -> ChatResult | str:
    """A ChatResult, or the error text of a line that did not succeed."""
    response = line.get("response") or {}
    if line.get("error") or response.get("status_code") != 200:
        error = line.get("error") or response.get("body", {}).get("error") or {"message": f"HTTP {response.get('status_code')}"}
        return f"{line.get('custom_id')}: {error.get('message', error)}"
    body = response["body"]
    choice = body["choices"][0]
    usage = body.get("usage") or {}
    return ChatResult(key=line["custom_id"], text=choice["message"].get("content") or "",
                      finish_reason=choice.get("finish_reason") or "", prompt_tokens=usage.get("prompt_tokens", 0),
                      completion_tokens=usage.get("completion_tokens", 0), latency_s=0.0, model=body.get("model", model))


def _recorded(llm: "LLMResource", batch_key: str):
    rows = llm.warehouse.query_df("SELECT batch_id, status FROM llm_batches WHERE batch_key = ?", [batch_key])
    return None if rows.empty else (rows["batch_id"][0], rows["status"][0])


def _record(llm: "LLMResource", batch_key: str, batch, n: int) -> None:
    with llm.warehouse.get_connection() as conn:
        conn.execute(
            "INSERT INTO llm_batches (batch_key, batch_id, endpoint, status, n_requests) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (batch_key) DO UPDATE SET batch_id = excluded.batch_id, status = excluded.status, "
            "updated_at = now()", [batch_key, batch.id, llm.endpoint, batch.status, n])


def complete_in_batches(llm: "LLMResource", todo: dict[str, ChatRequest], *, chunk: int, poll_s: float,
                        poll_cap_s: float, timeout_s: float, log: Callable[[str], None] | None
                        ) -> tuple[dict[str, ChatResult], list[str]]:
    client = llm.client()
    keys = sorted(todo)
    results: dict[str, ChatResult] = {}
    failures: list[str] = []
    for start in range(0, len(keys), chunk):
        part = keys[start:start + chunk]
        batch_key = hashlib.sha256("\n".join([llm.endpoint, *part]).encode()).hexdigest()
        recorded = _recorded(llm, batch_key)
        if recorded and recorded[1] in TERMINAL | {COLLECTED}:
            recorded = None  # collected, failed or expired: not waited on again; what is unanswered goes anew
        if recorded:
            batch_id = recorded[0]
            if log:
                log(f"batch {batch_id}: resuming the poll ({len(part)} requests)")
        else:
            payload = "".join(json.dumps(batch_line(k, todo[k]), ensure_ascii=False) + "\n" for k in part)
            uploaded = client.files.create(file=("batch.jsonl", io.BytesIO(payload.encode())), purpose="batch")
            batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                          completion_window="24h", metadata={"warmth_batch_key": batch_key[:32]})
            _record(llm, batch_key, batch, len(part))
            batch_id = batch.id
            if log:
                log(f"batch {batch_id}: submitted {len(part)} requests")
        batch = _wait(llm, client, batch_key, batch_id, len(part), poll_s, poll_cap_s, timeout_s)
        answered = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            if not file_id:
                continue
            for raw in client.files.content(file_id).text.splitlines():
                if not raw.strip():
                    continue
                line = json.loads(raw)
                request = todo.get(line.get("custom_id"))
                parsed = parse_output_line(line, request.model if request else "")
                if isinstance(parsed, str):
                    failures.append(parsed)
                elif parsed.key in todo:
                    results[parsed.key] = parsed
                    answered.append((todo[parsed.key], parsed))
        llm._store(answered)
        # Its answers are in the cache now; a re-run with the same unanswered requests submits anew.
        with llm.warehouse.get_connection() as conn:
            conn.execute("UPDATE llm_batches SET status = ?, updated_at = now() WHERE batch_key = ?",
                         [COLLECTED, batch_key])
        failed = {f.split(":", 1)[0] for f in failures}
        missing = [k for k in part if k not in results and k not in failed]
        if missing:
            failures.append(f"batch {batch_id} ended {batch.status} without an answer for {len(missing)} requests")
    return results, failures


def _wait(llm, client, batch_key, batch_id, n, poll_s, poll_cap_s, timeout_s):
    rng = random.Random(batch_id)
    deadline = time.monotonic() + timeout_s
    delay = poll_s
    while True:
        batch = client.batches.retrieve(batch_id)
        _record(llm, batch_key, batch, n)
        if batch.status in TERMINAL:
            return batch
        if time.monotonic() > deadline:
            raise TimeoutError(f"batch {batch_id} still {batch.status} after {timeout_s:.0f} s; re-run to keep polling "
                               "(the batch is recorded and will not be submitted twice)")
        time.sleep(delay * rng.uniform(0.8, 1.2))
        delay = min(delay * 2, poll_cap_s)
