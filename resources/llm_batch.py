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
from typing import Callable

from resources.remote_jobs import Ledger
from resources.warehouse import WarehouseResource
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult

TERMINAL = frozenset({"completed", "failed", "expired", "cancelled"})
COLLECTED = "collected"  # ours: the batch's output was read into the cache


def batch_ledger(warehouse: WarehouseResource) -> Ledger:
    return Ledger(warehouse, table="llm_batches", key_column="batch_key", id_column="batch_id", terminal=TERMINAL,
                  kind="batch", finished=frozenset({COLLECTED}))


def batch_line(key: str, request: ChatRequest) -> dict:
    return {"custom_id": key, "method": "POST", "url": "/v1/chat/completions", "body": request.body()}


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


def complete_in_batches(client, warehouse: WarehouseResource, endpoint: str, todo: dict[str, ChatRequest], *,
                        store: Callable[[list[tuple[ChatRequest, ChatResult]]], None], chunk: int, poll_s: float,
                        poll_cap_s: float, timeout_s: float, log: Callable[[str], None] | None
                        ) -> tuple[dict[str, ChatResult], list[str]]:
    """Answers of `todo` (request key -> request) through the Batch API; `store` puts each batch's answers
    into the call cache before the batch is marked collected, so a crash in between reads them again."""
    ledger = batch_ledger(warehouse)
    keys = sorted(todo)
    results: dict[str, ChatResult] = {}
    failures: list[str] = []
    for start in range(0, len(keys), chunk):
        part = keys[start:start + chunk]
        batch_key = hashlib.sha256("\n".join([endpoint, *part]).encode()).hexdigest()
        created = {"endpoint": endpoint, "n_requests": len(part)}
        recorded = ledger.lookup(batch_key)
        # Collected, failed or expired: not waited on again; what is unanswered goes anew.
        if ledger.running(recorded):
            batch_id = recorded.job_id
            if log:
                log(f"batch {batch_id}: resuming the poll ({len(part)} requests)")
        else:
            payload = "".join(json.dumps(batch_line(k, todo[k]), ensure_ascii=False) + "\n" for k in part)
            uploaded = client.files.create(file=("batch.jsonl", io.BytesIO(payload.encode())), purpose="batch")
            batch = client.batches.create(input_file_id=uploaded.id, endpoint="/v1/chat/completions",
                                          completion_window="24h", metadata={"warmth_batch_key": batch_key[:32]})
            ledger.record(batch_key, batch, created)
            batch_id = batch.id
            if log:
                log(f"batch {batch_id}: submitted {len(part)} requests")
        batch = ledger.wait(batch_key, batch_id, client.batches.retrieve, created, poll_s=poll_s,
                            poll_cap_s=poll_cap_s, deadline=time.monotonic() + timeout_s, timeout_s=timeout_s,
                            rng=random.Random(batch_id))
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
        store(answered)
        # Its answers are in the cache now; a re-run with the same unanswered requests submits anew.
        ledger.mark(batch_key, COLLECTED)
        failed = {f.split(":", 1)[0] for f in failures}
        missing = [k for k in part if k not in results and k not in failed]
        if missing:
            failures.append(f"batch {batch_id} ended {batch.status} without an answer for {len(missing)} requests")
    return results, failures
