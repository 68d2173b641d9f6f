"""Servers without structured output: found by a probe (the first uncached structured request per endpoint
and model, sent alone; HTTP 400/422 naming response_format or json_schema), remembered per endpoint and
model (`llm_structured_unsupported`), and sent the requests in their free-text form from then on, whose key
is the one they had before structured output, so answers cached then still count."""

from __future__ import annotations

import datetime
from typing import Callable

from resources.llm_remote import LLMCallError, StructuredOutputUnsupported
from resources.warehouse import WarehouseResource, merge_sql
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage


def rejecting_models(warehouse: WarehouseResource, endpoint: str) -> dict[str, str]:
    """Models on `endpoint` recorded as rejecting response_format -> the server's error."""
    rows = warehouse.query_df("SELECT model, error FROM llm_structured_unsupported WHERE endpoint = ?", [endpoint])
    return dict(zip(rows["model"], rows["error"]))


def record_rejection(warehouse: WarehouseResource, endpoint: str, model: str, error: str) -> None:
    sql = merge_sql("llm_structured_unsupported", ["endpoint", "model"], ["endpoint", "model", "detected_on", "error"])
    warehouse.write(lambda conn: conn.execute(sql, [endpoint, model, datetime.date.today(), error]),
                    ["llm_structured_unsupported"], exclusive=True)


def as_sent(requests: list[ChatRequest], rejecting: dict[str, str]) -> list[ChatRequest]:
    """The requests as the endpoint takes them: the free-text form for a model that rejected structured output."""
    return [r.free_text() if r.response_format and r.model in rejecting else r for r in requests]


def probe(requests: list[ChatRequest], todo: dict[str, list[int]], results: list, usage: Usage,
          failures: list[str], *, endpoint: str, check_budget: Callable[[ChatRequest], None],
          call: Callable[[ChatRequest, str], ChatResult], store: Callable[[list[tuple[ChatRequest, ChatResult]]], None],
          record: Callable[[str, str], None], log: Callable[[str], None] | None) -> bool:
    """Send the first uncached structured request of each model alone; False when the server rejected a
    response_format (recorded). Each probe's answer or error is taken out of `todo` like any other."""
    probes: dict[str, str] = {}
    for key, idx in todo.items():
        if requests[idx[0]].response_format:
            probes.setdefault(requests[idx[0]].model, key)
    accepted = True
    for model, key in probes.items():
        request = requests[todo[key][0]]
        check_budget(request)
        try:
            result = call(request, key)
        except StructuredOutputUnsupported as exc:
            record(model, str(exc))
            if log:
                log(f"{endpoint} ({model}) rejects structured output ({exc}); recorded in "
                    "llm_structured_unsupported: its requests go in free-text form from now on")
            accepted = False
            continue
        except LLMCallError as exc:
            failures.append(str(exc))
            del todo[key]
            continue
        store([(request, result)])
        for i in todo.pop(key):
            results[i] = result
        usage.add(result)
    return accepted
