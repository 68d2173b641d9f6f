"""The `llm_calls` table as the `llm` resource's cache: answers read by request key, the row an answer is
stored as, and the set-based insert every path writes through."""

from __future__ import annotations

import json

from resources.warehouse import WarehouseResource, merge_sql
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult


def cached(warehouse: WarehouseResource, keys: list[str]) -> dict[str, ChatResult]:
    if not keys:
        return {}
    with warehouse.get_connection() as conn:
        rows = conn.execute(
            "SELECT request_key, response_text, finish_reason, prompt_tokens, completion_tokens, latency_s, model "
            "FROM llm_calls WHERE request_key IN (SELECT unnest(?))", [keys]
        ).fetchall()
    return {r[0]: ChatResult(*r, cached=True) for r in rows}


def call_row(request: ChatRequest, result: ChatResult, provider: str, endpoint: str) -> dict:
    # request_json records the key's inputs (salt and calibration included), not `request.body()`.
    body = {"messages": request.message_dicts(), "temperature": request.temperature,
            "max_tokens": request.max_tokens, "seed": request.seed, "top_p": request.top_p,
            "cache_salt": request.cache_salt}
    if request.response_format:
        body["response_format"] = request.response_format_dict()
    if request.calibration:
        body["calibration"] = request.calibration_dict()
    return {
        "request_key": result.key, "provider": provider, "endpoint": endpoint,
        "model": request.model, "template_version": request.template_version,
        "request_json": json.dumps(body, ensure_ascii=False),
        "response_text": result.text, "finish_reason": result.finish_reason,
        "prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
        "latency_s": result.latency_s, "response_format": request.response_format or None,
    }


def insert_rows(warehouse: WarehouseResource, rows: list[dict]) -> None:
    if not rows:
        return
    import pandas as pd

    # One set-based insert from a DataFrame: DuckDB's executemany goes row by row (~2 ms a row).
    # Columns: every key of any row (a journal of older code has no response_format).
    # A key answered twice in one batch (a journal folded beside the live rows) is stored once: the first.
    frame = pd.DataFrame(rows, columns=list(dict.fromkeys(k for row in rows for k in row)))
    frame = frame.drop_duplicates("request_key", keep="first")
    sql = merge_sql("llm_calls", ["request_key"], list(frame.columns), source="SELECT * FROM _answers")

    def insert(conn) -> None:
        conn.register("_answers", frame)
        try:
            conn.execute(sql)
        finally:
            conn.unregister("_answers")

    warehouse.write(insert, ["llm_calls"], exclusive=True)
