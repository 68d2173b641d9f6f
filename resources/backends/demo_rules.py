"""The offline demo's rule-based rewriter (`[rewrite] rewriter = "demo_rules"`, lib/demo_rewriter.py) as a
backend: NOT the study's method. Deterministic and free, so nothing is stored in the call cache: each rewrite is
made again, under the key it always had (`demo_key`), and every answer says it was not cached."""

from __future__ import annotations

from resources.backends.base import Backend
from warmth_assets.lib.demo_rewriter import MODEL, demo_answer, demo_key, demo_parts
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult


class DemoRules(Backend):
    in_process = True

    def __init__(self, layer):
        super().__init__(layer, MODEL)

    def key(self, request: ChatRequest) -> str:
        return demo_key(request)

    def as_sent(self, requests: list[ChatRequest]) -> list[ChatRequest]:
        for request in requests:
            demo_parts(request)  # refuses any other request
        return requests

    def answer(self, requests, todo, results, usage, failures, log) -> bool:
        for key, indices in todo.items():
            request = requests[indices[0]]
            result = ChatResult(key=key, text=demo_answer(request), finish_reason="stop", prompt_tokens=0,
                                completion_tokens=0, latency_s=0.0, model=request.model)
            for i in indices:
                results[i] = result
            usage.add(result)
        return True
