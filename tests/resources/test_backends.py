"""Providers as backends: a provider is one `Backend` and one line in `BACKENDS`; the layer caches, journals and
meters whatever backend answers; the demo's rules are a backend that stores nothing."""

import pytest

from resources import backends
from resources.backends import Backend
from resources.llm import LLMResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib.demo_rewriter import demo_request
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, GenerateConfig


class Echo(Backend):
    """A provider added for the test: one class, one registry line."""

    answered = 0

    def __init__(self, layer):
        super().__init__(layer, "echo://here")

    def answer(self, requests, todo, results, usage, failures, log) -> bool:
        pairs = []
        for key, indices in todo.items():
            request = requests[indices[0]]
            result = ChatResult(key, request.messages[-1][1].upper(), "stop", 1, 1, 0.0, request.model)
            Echo.answered += 1
            for i in indices:
                results[i] = result
            usage.add(result)
            pairs.append((request, result))
        self.layer.store(pairs)
        return True


def test_a_new_provider_is_one_backend_and_one_registry_line(tmp_path, monkeypatch):
    monkeypatch.setitem(backends.BACKENDS, "echo", Echo)
    llm = LLMResource(provider="echo", warehouse=WarehouseResource(database=str(tmp_path / "w.duckdb")))
    requests = [ChatRequest.build([("user", text)], model="m", config=GenerateConfig(seed=1)) for text in "aba"]
    results, usage = llm.complete_many(requests)
    assert [r.text for r in results] == ["A", "B", "A"] and usage.requests_sent == 2 and Echo.answered == 2
    assert llm.endpoint == "echo://here" and llm.key(requests[0]) == requests[0].key("echo", "echo://here")
    results, usage = llm.complete_many(requests)  # the layer's cache, not the backend, answers now
    assert usage.cache_hits == 3 and Echo.answered == 2 and all(r.cached for r in results)
    stored = llm.warehouse.query_df("SELECT provider, endpoint FROM llm_calls")
    assert set(stored["provider"]) == {"echo"} and set(stored["endpoint"]) == {"echo://here"}
    with pytest.raises(ValueError, match="provider 'nope': use one of 'openai', 'local', 'rule_based_demo'"):
        LLMResource(provider="nope", warehouse=llm.warehouse).complete_many(requests)


def test_the_demo_rules_answer_their_requests_only_and_store_nothing(tmp_path):
    llm = LLMResource(provider="openai", warehouse=WarehouseResource(database=str(tmp_path / "w.duckdb")))
    demo = llm.with_backend(provider="rule_based_demo")
    request = demo_request("cold", "Thanks!", "Great question! It is 4.", 2025)
    results, usage = demo.complete_many([request, request])
    assert [r.text for r in results] == ["It is 4.", "It is 4."] and not any(r.cached for r in results)
    assert demo.complete_many([request])[0][0].cached is False  # made again: nothing cached
    assert llm.warehouse.query_df("SELECT count(*) AS n FROM llm_calls")["n"][0] == 0
    assert demo.in_process and not llm.in_process and demo.endpoint == "demo_rules:demo-rules-v1"
    with pytest.raises(ValueError, match="the demo rules answer only demo rewrite requests"):
        demo.complete_many([ChatRequest.build([("user", "judge this")], model="gpt-4o-2024-08-06")])
    with pytest.raises(ValueError, match="OpenAI-compatible provider"):
        demo.client()


def test_sampling_travels_as_one_object():
    config = GenerateConfig(temperature=0.7, max_tokens=64, seed=2025, top_p=0.9)
    request = ChatRequest.build([("user", "hi")], model="m", config=config)
    assert request.config == config
    assert request == ChatRequest((("user", "hi"),), "m", temperature=0.7, max_tokens=64, seed=2025, top_p=0.9)
    with pytest.raises(TypeError, match="pass max_tokens, temperature in config=GenerateConfig"):
        ChatRequest.build([("user", "hi")], model="m", temperature=0.7, max_tokens=64)
