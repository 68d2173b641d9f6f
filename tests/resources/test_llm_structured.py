"""Structured verdicts on every backend: a server that honours response_format, one that rejects it
(detected once, recorded, judged in free-text form), and choice scoring in process."""

import datetime
import json
import math

import pytest

from resources.llm import LLMResource
from resources.local_lm import LocalLMResource
from resources.warehouse import WarehouseResource
from tests.openai_server import FakeOpenAI
from tests.resources.test_llm import make_llm
from warmth_assets.lib import costs
from warmth_assets.lib.judging import parse_verdict_prob
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig, verdict_response_format

LABELS = ("CORRECT", "INCORRECT")


class Judge(FakeOpenAI):
    """Says CORRECT when the response to grade mentions paris (free text: one word)."""

    @staticmethod
    def answer_for(messages):
        return "CORRECT" if "paris" in messages[-1]["content"] else "INCORRECT"


def judge_requests(texts, labels=LABELS):
    return [ChatRequest.build([{"role": "system", "content": "grade"}, {"role": "user", "content": t}],
                              model="gpt-4o-2024-08-06", template_version="judge-v1",
                              config=GenerateConfig(max_tokens=20), free_text_max_tokens=8,
                              response_format=verdict_response_format(labels))
            for t in texts]


TEXTS = ["the capital is paris", "the capital is rome", "paris, surely"]


@pytest.fixture
def server(request):
    fake = Judge(structured=request.param).start()
    yield fake
    fake.stop()


@pytest.mark.parametrize("server", ["honour"], indirect=True)
def test_a_server_with_structured_output_answers_a_label_and_the_format_is_stored(tmp_path, server):
    llm = make_llm(tmp_path, server)
    results, usage = llm.complete_many(judge_requests(TEXTS))
    assert [json.loads(r.text) for r in results] == [{"verdict": "CORRECT"}, {"verdict": "INCORRECT"},
                                                      {"verdict": "CORRECT"}]
    assert [parse_verdict_prob(r.text) for r in results] == [("CORRECT", None), ("INCORRECT", None), ("CORRECT", None)]
    assert server.structured_requests == 3 and usage.requests_sent == 3  # the probe is one of the three
    stored = llm.warehouse.query_df("SELECT request_json, response_format FROM llm_calls")
    assert all(json.loads(f) == verdict_response_format(LABELS) for f in stored["response_format"])
    assert all(json.loads(j)["response_format"]["json_schema"]["name"] == "verdict" for j in stored["request_json"])
    assert llm.warehouse.query_df("SELECT * FROM llm_structured_unsupported").empty
    again, usage2 = llm.complete_many(judge_requests(TEXTS))
    assert usage2.cache_hits == 3 and server.total_attempts == 3


@pytest.mark.parametrize("server", ["reject"], indirect=True)
def test_a_server_that_rejects_response_format_is_recorded_once_and_judged_in_free_text(tmp_path, server):
    llm = make_llm(tmp_path, server)
    logged: list[str] = []
    requests = judge_requests(TEXTS)
    results, usage = llm.complete_many(requests, log=logged.append)
    assert [parse_verdict_prob(r.text) for r in results] == [("CORRECT", None), ("INCORRECT", None), ("CORRECT", None)]
    assert server.structured_requests == 1  # only the probe carried the format; nothing else was tried with it
    assert usage.requests_sent == 3 and sum(server.answered.values()) == 3
    # The answers are stored under the free-text keys (the keys of before: max_tokens 8, no format).
    stored = llm.warehouse.query_df("SELECT request_key, request_json, response_format FROM llm_calls")
    assert set(stored["request_key"]) == {llm.key(r.free_text()) for r in requests}
    assert stored["response_format"].isna().all()
    sent = [json.loads(j) for j in stored["request_json"]]
    assert all(body["max_tokens"] == 8 and "response_format" not in body for body in sent)
    record = llm.warehouse.query_df("SELECT * FROM llm_structured_unsupported")
    assert record[["endpoint", "model"]].values.tolist() == [[server.base_url, "gpt-4o-2024-08-06"]]
    assert record["detected_on"][0].date() == datetime.date.today()
    assert "response_format" in record["error"][0] and "HTTP 400" in record["error"][0]
    assert any("rejects structured output" in line for line in logged)

    # A later run (a new resource, new requests) reads the record: the structured form is not sent again.
    later = make_llm(tmp_path, server)
    results2, usage2 = later.complete_many(judge_requests(TEXTS + ["rome it is"]))
    assert server.structured_requests == 1 and usage2.cache_hits == 3 and usage2.requests_sent == 1
    assert parse_verdict_prob(results2[-1].text) == ("INCORRECT", None)


@pytest.mark.parametrize("server", ["reject"], indirect=True)
def test_the_budget_counts_the_keys_that_are_sent(tmp_path, server):
    prices = {"gpt-4o-2024-08-06": {"input": 2.5, "output": 10.0}}
    llm = make_llm(tmp_path, server)
    llm.complete_many([r.free_text() for r in judge_requests(TEXTS)])  # answers of before structured verdicts
    assert server.structured_requests == 0
    one_call = costs.pending_usd(judge_requests(TEXTS[:1]), prices)
    # An endpoint that honours the format pays for all three again (new keys): the probe fits the budget,
    # the other two do not, and are not sent.
    honour = Judge(structured="honour").start()
    try:
        fresh = make_llm(tmp_path, honour, budget_usd=one_call * 2)
        with pytest.raises(costs.BudgetExceeded, match="2 uncached calls"):
            fresh.complete_many(judge_requests(TEXTS))
        assert honour.total_attempts == 1 and honour.structured_requests == 1
    finally:
        honour.stop()
    # The rejecting endpoint: the probe (one call) is within the budget, then the free-text keys are all cached.
    bounded = make_llm(tmp_path, server, budget_usd=llm.spent_usd() + one_call * 1.5)
    results, usage = bounded.complete_many(judge_requests(TEXTS))
    assert server.structured_requests == 1 and usage.cache_hits == 3 and usage.requests_sent == 0
    assert [parse_verdict_prob(r.text)[0] for r in results] == ["CORRECT", "INCORRECT", "CORRECT"]


@pytest.mark.parametrize("server", ["honour"], indirect=True)
def test_batch_mode_sends_the_format(tmp_path, server):
    llm = make_llm(tmp_path, server, batch_min_requests=2, batch_poll_s=0.01, batch_poll_cap_s=0.02)
    results, usage = llm.complete_many(judge_requests(TEXTS))
    assert len(server.batches) == 1 and server.total_attempts == 1  # the probe alone, then one batch of two
    assert server.structured_requests == 3
    assert [parse_verdict_prob(r.text)[0] for r in results] == ["CORRECT", "INCORRECT", "CORRECT"]


# -- choice scoring in process ----------------------------------------------------------------------------

def naive_logprob(model, tokenizer, messages, label) -> float:
    """Sum of the label tokens' log-probabilities after the chat prompt, one unpadded sequence at a time."""
    import torch

    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    label_ids = tokenizer(label, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids + label_ids])).logits[0].float()
    logprobs = torch.log_softmax(logits, dim=-1)
    return float(sum(logprobs[len(ids) - 1 + k, t] for k, t in enumerate(label_ids)))


def test_choice_scoring_matches_a_naive_log_likelihood(tiny_chat_model, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # Labels in the tiny word vocabulary; one of two tokens, so a longer option is scored in full.
    labels = ("yes", "no", "hello friend")
    prompts = ["what is two plus four", "hello", "the capital of france is paris i am fine thanks how are you",
               "cold", "warm reply my dear"]
    local = LocalLMResource(source_kind="local", source=str(tiny_chat_model), batch_size=3, device="cpu",
                            dtype="float32")  # the naive reference computes in float32
    llm = LLMResource(provider="local", local=local, warehouse=WarehouseResource(database=str(tmp_path / "w.duckdb")))
    requests = [ChatRequest.build([{"role": "user", "content": p}], model="tiny",
                                  config=GenerateConfig(max_tokens=20, temperature=0.0),
                                  response_format=verdict_response_format(labels)) for p in prompts]
    results, usage = llm.complete_many(requests)

    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    naives = []
    for request, result in zip(requests, results):
        answer = json.loads(result.text)
        assert set(answer) == {"verdict", "p"} and answer["verdict"] in labels
        naive = [naive_logprob(model, tokenizer, request.message_dicts(), label) for label in labels]
        naives.append(naive)
        expected = [math.exp(x - max(naive)) / sum(math.exp(y - max(naive)) for y in naive) for x in naive]
        assert abs(sum(expected) - 1) < 1e-9
        assert answer["verdict"] == labels[naive.index(max(naive))]
        assert answer["p"] == pytest.approx(max(expected), abs=1e-5)
        scored = local.choice_logprobs([request], [labels])[0][0]  # every option, batched with padding
        assert scored == pytest.approx(naive, abs=1e-4)
        probs = [math.exp(x - max(scored)) for x in scored]
        assert sum(p / sum(probs) for p in probs) == pytest.approx(1.0)
        assert parse_verdict_prob(result.text, labels) == (answer["verdict"], answer["p"])
    # In one batch with others (padding on the left), each request's scores are those of its own pass.
    batched = local.choice_logprobs(requests, [labels] * len(requests))
    alone = [local.choice_logprobs([r], [labels])[0] for r in requests]
    for (a, n_a, l_a), (b, n_b, l_b) in zip(batched, alone):
        assert a == pytest.approx(b, abs=1e-4) and (n_a, l_a) == (n_b, l_b)
    for (scores, _, _), naive in zip(batched, naives):  # and each is the naive, unpadded log-likelihood
        assert scores == pytest.approx(naive, abs=1e-4)
    assert [l for l in batched[0][2]] == [1, 1, 2]
    # Cached with the probability: a re-run reads the same answer text.
    again, usage2 = llm.complete_many(requests)
    assert usage2.cache_hits == len(requests) and [r.text for r in again] == [r.text for r in results]
    stored = llm.warehouse.query_df("SELECT response_format FROM llm_calls")
    assert stored["response_format"].notna().all()


def test_the_local_backend_mixes_generation_and_choice_scoring(tiny_chat_model):
    local = LocalLMResource(source_kind="local", source=str(tiny_chat_model), batch_size=2, device="cpu",
                            dtype="float32")  # the naive reference computes in float32
    free = ChatRequest.build([{"role": "user", "content": "hello friend"}], model="tiny",
                             config=GenerateConfig(max_tokens=4))
    choice = ChatRequest.build([{"role": "user", "content": "hello friend"}], model="tiny",
                               config=GenerateConfig(max_tokens=20),
                               response_format=verdict_response_format(("yes", "no")))
    results = local.generate([free, choice, free])
    assert results[0].text == results[2].text and not results[0].text.startswith("{")
    assert json.loads(results[1].text)["verdict"] in ("yes", "no")
    with pytest.raises(ValueError, match="only verdict formats"):
        local.generate([ChatRequest.build([("user", "x")], model="tiny", response_format={"type": "json_object"})])


def test_content_free_calibration_divides_out_the_prompts_own_preference(tiny_chat_model, tmp_path):
    """Calibrated p = softmax over labels of (log-likelihood given the prompt - log-likelihood given the content-free
    prompt), by hand with the unbatched naive scorer; it differs from the uncalibrated p. The calibration is in the
    key (a calibrated and an uncalibrated answer are cached apart) and only the in-process backend takes it."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from warmth_assets.lib.llm_requests import content_free_calibration

    labels = ("yes", "no", "hello friend")
    free = [{"role": "system", "content": "answer yes or no"}, {"role": "user", "content": "question N/A"}]
    prompts = ["what is two plus four", "the capital of france is paris", "cold reply"]

    def requests(calibration):
        return [ChatRequest.build([{"role": "system", "content": "answer yes or no"},
                                   {"role": "user", "content": f"question {p}"}], model="tiny",
                                  config=GenerateConfig(max_tokens=20),
                                  response_format=verdict_response_format(labels), calibration=calibration)
                for p in prompts]

    local = LocalLMResource(source_kind="local", source=str(tiny_chat_model), batch_size=2, device="cpu",
                            dtype="float32")  # the naive reference computes in float32
    llm = LLMResource(provider="local", local=local, warehouse=WarehouseResource(database=str(tmp_path / "w.duckdb")))
    plain, _ = llm.complete_many(requests(""))
    calibrated, usage = llm.complete_many(requests(content_free_calibration(free)))
    assert usage.cache_hits == 0  # a calibrated request has its own key

    model = AutoModelForCausalLM.from_pretrained(tiny_chat_model).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_chat_model)
    content_free = [naive_logprob(model, tokenizer, free, label) for label in labels]
    for request, before, after in zip(requests(""), plain, calibrated):
        scores = [naive_logprob(model, tokenizer, request.message_dicts(), label) for label in labels]
        corrected = [s - f for s, f in zip(scores, content_free)]
        expected = [math.exp(c) / sum(math.exp(x) for x in corrected) for c in corrected]
        best = max(range(len(labels)), key=lambda k: corrected[k])
        answer = json.loads(after.text)
        assert answer["verdict"] == labels[best] and answer["p"] == pytest.approx(expected[best], abs=1e-5)
        assert parse_verdict_prob(after.text, labels) == (answer["verdict"], answer["p"])
        uncalibrated = [math.exp(s) / sum(math.exp(x) for x in scores) for s in scores]
        assert json.loads(before.text)["p"] == pytest.approx(max(uncalibrated), abs=1e-5)
        assert answer["p"] != pytest.approx(json.loads(before.text)["p"], abs=1e-3)
    stored = llm.warehouse.query_df("SELECT request_json FROM llm_calls")["request_json"].map(json.loads)
    assert sum("calibration" in body for body in stored) == len(prompts)

    with pytest.raises(ValueError, match="needs a verdict response_format"):
        local.generate([ChatRequest.build([("user", "hello")], model="tiny", calibration=content_free_calibration(free))])
    served = LLMResource(provider="openai", base_url="http://127.0.0.1:9", api_key="x", warehouse=llm.warehouse)
    with pytest.raises(ValueError, match="choice calibration needs the label scores of the in-process backend"):
        served.complete_many(requests(content_free_calibration(free)))
