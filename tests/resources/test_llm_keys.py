"""Request keys and stored rows pinned to literals computed before the providers became backends (commit
e5b9ccd): a refactor of the call layer that changes a key would orphan every cached answer."""

import json

import pytest

from resources.llm import LLMResource
from resources.local_lm import LocalLMResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, content_free_calibration, verdict_response_format

MESSAGES = (("system", "You rewrite."), ("user", "Héllo, 2+2?"))
VERDICT = verdict_response_format(("CORRECT", "INCORRECT"))
REQUESTS = {
    "plain": ChatRequest(MESSAGES, "gpt-4o-2024-08-06", temperature=0.7, max_tokens=64, seed=2025,
                         template_version="rewrite-study-v1"),
    "structured": ChatRequest(MESSAGES, "gpt-4o-2024-08-06", temperature=0.0, max_tokens=20, seed=2025,
                              template_version="judge-v1", response_format=VERDICT, free_text_max_tokens=8),
    "salted": ChatRequest(MESSAGES, "ft:gpt-4o:warm", temperature=0.8, max_tokens=300, seed=2025,
                          template_version="eval-v1", cache_salt="2026-11-23"),
    "top_p": ChatRequest((("user", "hi"),), "smollm2", temperature=0.8, max_tokens=24, top_p=0.9),
    "calibrated": ChatRequest(MESSAGES, "smollm2", max_tokens=20, seed=7, template_version="judge-v1",
                              response_format=VERDICT, calibration=content_free_calibration([("user", "N/A")])),
}
SMOLLM = dict(source_kind="hf", source="HuggingFaceTB/SmolLM2-135M-Instruct")
# resource -> (endpoint, {request: key})
PINNED = {
    "served": ("http://127.0.0.1:8000/v1", {
        "plain": "0b3614e98505e976017ec6742d1fa3f80505f7901dbad4d6d388ef2bf51686d4",
        "structured": "e4c9208a23f7818060b43691d78742fe0e6928908dcf5df5aac0ae005b23d551",
        "salted": "4d300a9ea4fc55987a007a5b8a28efd2ab405849baa332b0dc6cd3b9c1583a84",
        "top_p": "3d1af8b416b35fcf1f8e0e206fc5b1134f524cdf8104e0f4f4fd7806cd08cd6b",
        "calibrated": "896c935f95f16396e555caf956739e0a37594b228fef51bf51b420ecddc05983"}),
    "openai": ("https://api.openai.com/v1", {
        "plain": "497348e833f67bd695c1e2773c27d2e30dfe739309992a06e8e12b1836606225",
        "structured": "21c32ce7b915aacd11086b89034bec26a2ee49b3455395eda05cc65f4719e571",
        "salted": "d3fda42d9e8ba2ec762866d71962b76fbcd5d250bdbbeb1a4646ecd35b0037a0",
        "top_p": "5971bfaf6be6ecc33de96bc99fea66937b6ed0bb02876e06eab2ce290327aea2",
        "calibrated": "9fc373871cc555a09f1fc1d3113182fdd0c0ebd4ca0099d6d7112c915ba83aa1"}),
    "local": ("local:hf:HuggingFaceTB/SmolLM2-135M-Instruct", {
        "plain": "43b729109150b6d12498ddc0c57890334fb4e02ead2c6c516dfdb683b9740d69",
        "structured": "3aff1538294e4c940167bacede5bdd6f9a14516483669a93e4f06ca11cb2bbe0",
        "salted": "fa89c75a8b91197dc5a734dbaaa4f444d05d24cb973f62a9c47c2d11b10a0591",
        "top_p": "834ad51e7e9be8cbba58048cc70436524c8533f1e8d7b6d09d556a2fda2e5463",
        "calibrated": "9ac2aa9d7ee6cd567b8b766f04ac9332550c8ba6523aa3ea8acef28e41118852"}),
    "local_adapter": ("local:hf:HuggingFaceTB/SmolLM2-135M-Instruct@ab12", {
        "plain": "71254a9da429dc9833f0c93b50002a8739d83a28639566fd504ae6db1d59f389",
        "structured": "c7b64d82c12f4cc4525ac492ffabd7e35c28b1de9917a77be0bc0c7020574df1",
        "salted": "ac138f79c62e99861f88b8c87cfc2f404a96533592d95718b98bcdd6b18f0f6a",
        "top_p": "563ac5f88da8a93dfb61e3361ab61abd1b202655ec0a93009c55f6c4060b814b",
        "calibrated": "7002779e02f1da37ba693431ee064f80719b40c1785a4b92626eeb95a4ba975a"}),
}


def resource(name: str, tmp_path) -> LLMResource:
    warehouse = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    return {
        "served": lambda: LLMResource(provider="openai", base_url="http://127.0.0.1:8000/v1/", warehouse=warehouse),
        "openai": lambda: LLMResource(provider="openai", warehouse=warehouse),
        "local": lambda: LLMResource(provider="local", warehouse=warehouse, local=LocalLMResource(**SMOLLM)),
        "local_adapter": lambda: LLMResource(provider="local", warehouse=warehouse, local=LocalLMResource(
            **SMOLLM, adapter_path="/x/adapters/warm-e2", adapter_sha256="ab12")),
    }[name]()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_request_keys_are_the_pinned_literals(name, tmp_path):
    llm = resource(name, tmp_path)
    endpoint, keys = PINNED[name]
    assert llm.endpoint == endpoint
    assert {label: llm.key(request) for label, request in REQUESTS.items()} == keys
    # The with_backend copy of a runner keys its requests as the resource built for that backend directly.
    if name == "served":
        copy = resource("openai", tmp_path).with_backend(base_url="http://127.0.0.1:8000/v1/")
        assert copy.key(REQUESTS["plain"]) == keys["plain"]


def test_the_body_sent_is_the_pinned_literal():
    assert json.dumps(REQUESTS["structured"].body(), ensure_ascii=False) == (
        '{"model": "gpt-4o-2024-08-06", "messages": [{"role": "system", "content": "You rewrite."}, {"role": "user", '
        '"content": "Héllo, 2+2?"}], "temperature": 0.0, "max_tokens": 20, "seed": 2025, "response_format": '
        '{"json_schema": {"name": "verdict", "schema": {"additionalProperties": false, "properties": {"verdict": '
        '{"enum": ["CORRECT", "INCORRECT"], "type": "string"}}, "required": ["verdict"], "type": "object"}, '
        '"strict": true}, "type": "json_schema"}}')
    assert REQUESTS["top_p"].body() == {"model": "smollm2", "messages": [{"role": "user", "content": "hi"}],
                                        "temperature": 0.8, "max_tokens": 24, "top_p": 0.9}


def test_stored_rows_are_the_pinned_literals(tmp_path):
    served, local = resource("served", tmp_path), resource("local_adapter", tmp_path)
    served.store([(REQUESTS["structured"], ChatResult(PINNED["served"][1]["structured"], "CORRECT", "stop", 10, 2,
                                                      0.5, "gpt-4o-2024-08-06"))])
    local.store([(REQUESTS["calibrated"], ChatResult(PINNED["local_adapter"][1]["calibrated"], "INCORRECT", "stop",
                                                     10, 1, 0.0, "smollm2"))])
    rows = served.warehouse.query_df(
        "SELECT request_key, provider, endpoint, model, template_version, request_json, response_text, finish_reason, "
        "prompt_tokens, completion_tokens, latency_s, response_format FROM llm_calls ORDER BY provider"
    ).to_dict("records")
    schema = ('{"json_schema": {"name": "verdict", "schema": {"additionalProperties": false, "properties": '
              '{"verdict": {"enum": ["CORRECT", "INCORRECT"], "type": "string"}}, "required": ["verdict"], "type": '
              '"object"}, "strict": true}, "type": "json_schema"}')
    compact = ('{"json_schema":{"name":"verdict","schema":{"additionalProperties":false,"properties":{"verdict":'
               '{"enum":["CORRECT","INCORRECT"],"type":"string"}},"required":["verdict"],"type":"object"},'
               '"strict":true},"type":"json_schema"}')
    messages = '[{"role": "system", "content": "You rewrite."}, {"role": "user", "content": "Héllo, 2+2?"}]'
    assert rows == [
        {"request_key": "7002779e02f1da37ba693431ee064f80719b40c1785a4b92626eeb95a4ba975a", "provider": "local",
         "endpoint": "local:hf:HuggingFaceTB/SmolLM2-135M-Instruct@ab12", "model": "smollm2",
         "template_version": "judge-v1",
         "request_json": '{"messages": ' + messages + ', "temperature": 0.0, "max_tokens": 20, "seed": 7, '
                         '"top_p": null, "cache_salt": "", "response_format": ' + schema + ', "calibration": '
                         '{"messages": [["user", "N/A"]], "method": "content_free"}}',
         "response_text": "INCORRECT", "finish_reason": "stop", "prompt_tokens": 10, "completion_tokens": 1,
         "latency_s": 0.0, "response_format": compact},
        {"request_key": "e4c9208a23f7818060b43691d78742fe0e6928908dcf5df5aac0ae005b23d551", "provider": "openai",
         "endpoint": "http://127.0.0.1:8000/v1", "model": "gpt-4o-2024-08-06", "template_version": "judge-v1",
         "request_json": '{"messages": ' + messages + ', "temperature": 0.0, "max_tokens": 20, "seed": 2025, '
                         '"top_p": null, "cache_salt": "", "response_format": ' + schema + '}',
         "response_text": "CORRECT", "finish_reason": "stop", "prompt_tokens": 10, "completion_tokens": 2,
         "latency_s": 0.5, "response_format": compact},
    ]
