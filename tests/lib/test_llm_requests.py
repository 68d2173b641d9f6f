"""Request keys: structured output is in a key only when set, so every cache written before it stays valid."""

from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig, verdict_labels, verdict_response_format

JUDGE_LIKE = [{"role": "system", "content": "You grade."},
              {"role": "user", "content": "Is 2+2=4? Reply CORRECT or INCORRECT."}]


def old_judge_request(**kw) -> ChatRequest:
    return ChatRequest.build(JUDGE_LIKE, model="gpt-4o-2024-08-06",
                             config=GenerateConfig(temperature=0.0, max_tokens=8, seed=42),
                             template_version="judge-v1", **kw)


def test_keys_without_response_format_are_those_computed_before_it_existed():
    # Values computed with the code before ChatRequest had response_format (commit 03102da).
    assert old_judge_request().key("openai", "https://api.openai.com/v1") == \
        "abac565664c066e1ac7687af2278ef7dd2589dcdf3d759ab3b3c618db62088f0"
    other = ChatRequest.build([("user", "hi")], model="m", config=GenerateConfig(top_p=0.9), cache_salt="2026-11-23")
    assert other.key("local", "local:gguf:x") == "c726ff6b798671e889b0ae87dc8e0f90551867ed0b4364ace983a43996c66740"
    # An empty format is no format, and the free-text max_tokens never enters a key.
    assert old_judge_request(response_format=None).key("openai", "u") == old_judge_request().key("openai", "u")
    assert old_judge_request(free_text_max_tokens=3).key("openai", "u") == old_judge_request().key("openai", "u")


def test_a_response_format_is_part_of_the_key_and_canonical():
    plain = old_judge_request()
    fmt = verdict_response_format(("CORRECT", "INCORRECT"))
    structured = ChatRequest.build(JUDGE_LIKE, model="gpt-4o-2024-08-06", config=GenerateConfig(max_tokens=20, seed=42),
                                   template_version="judge-v1", response_format=fmt, free_text_max_tokens=8)
    assert structured.key("openai", "u") != plain.key("openai", "u")
    reordered = dict(reversed(list(fmt.items())))  # the same format written in another key order
    assert ChatRequest.build(JUDGE_LIKE, model="gpt-4o-2024-08-06",
                             config=GenerateConfig(max_tokens=20, seed=42), template_version="judge-v1",
                             response_format=reordered).key("openai", "u") == structured.key("openai", "u")
    other_labels = ChatRequest.build(JUDGE_LIKE, model="gpt-4o-2024-08-06",
                                     config=GenerateConfig(max_tokens=20, seed=42),
                                     template_version="judge-v1",
                                     response_format=verdict_response_format(("REFUSED", "COMPLIED")))
    assert other_labels.key("openai", "u") != structured.key("openai", "u")
    # The free-text form is exactly the request of before: same key, so its cached answers are read.
    assert structured.free_text() == plain and structured.free_text().key("openai", "u") == plain.key("openai", "u")
    assert structured.response_format_dict() == fmt and plain.free_text() is plain


def test_verdict_format_round_trip():
    fmt = verdict_response_format(["REFUSED", "COMPLIED"])
    assert fmt["json_schema"]["strict"] is True and fmt["json_schema"]["schema"]["required"] == ["verdict"]
    assert fmt["json_schema"]["schema"]["additionalProperties"] is False
    assert verdict_labels(fmt) == ("REFUSED", "COMPLIED")
    assert verdict_labels(None) is None and verdict_labels({"type": "json_object"}) is None


def test_calibration_is_in_the_key_only_when_used():
    from warmth_assets.lib.llm_requests import content_free_calibration

    fmt = verdict_response_format(("CORRECT", "INCORRECT"))
    build = lambda **kw: ChatRequest.build(JUDGE_LIKE, model="m",
                                           config=GenerateConfig(max_tokens=20, seed=42),  # noqa: E731
                                           template_version="judge-v1", response_format=fmt, **kw)
    # "none": no calibration field set, so the key is that of before the field existed (pinned above too)
    assert build().key("local", "u") == build(calibration="").key("local", "u")
    assert build(calibration=None).key("local", "u") == build().key("local", "u")
    assert old_judge_request(calibration="").key("openai", "https://api.openai.com/v1") == \
        "abac565664c066e1ac7687af2278ef7dd2589dcdf3d759ab3b3c618db62088f0"
    free = content_free_calibration([{"role": "system", "content": "You grade."}, {"role": "user", "content": "N/A"}])
    assert free == {"method": "content_free", "messages": [["system", "You grade."], ["user", "N/A"]]}
    calibrated = build(calibration=free)
    assert calibrated.key("local", "u") != build().key("local", "u")
    assert calibrated.calibration_dict() == free and build().calibration_dict() is None
    other = content_free_calibration([("system", "You grade."), ("user", "[MASK]")])
    assert build(calibration=other).key("local", "u") != calibrated.key("local", "u")
    reordered = dict(reversed(list(free.items())))
    assert build(calibration=reordered).key("local", "u") == calibrated.key("local", "u")  # canonical
    # the free-text form has no label scores to calibrate: it is the plain request of before
    assert calibrated.free_text() == build().free_text() and not calibrated.free_text().calibration


def test_one_request_body_for_the_call_and_the_batch_line():
    """The body the server gets: optional fields only when set (servers reject a null seed); the Batch API
    line carries the very same body."""
    from resources.llm_batch import batch_line
    from warmth_assets.lib.llm_requests import verdict_response_format

    plain = ChatRequest.build([{"role": "user", "content": "hi"}], model="m",
                              config=GenerateConfig(temperature=0.2, max_tokens=9))
    assert plain.body() == {"model": "m", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.2,
                            "max_tokens": 9}
    full = ChatRequest.build([("user", "hi")], model="m",
                             config=GenerateConfig(seed=3, top_p=0.9), cache_salt="d", template_version="t",
                             response_format=verdict_response_format(["A", "B"]))
    assert list(full.body()) == ["model", "messages", "temperature", "max_tokens", "seed", "top_p", "response_format"]
    assert full.body()["response_format"] == verdict_response_format(["A", "B"])  # salt and version: key only
    assert batch_line("k", full) == {"custom_id": "k", "method": "POST", "url": "/v1/chat/completions",
                                     "body": full.body()}
