"""The llm resource's guards: the budget stops a batch before anything is sent, and the per-provider
limit holds across resources (separate runs) sharing one home."""

import threading

import pytest

from tests.openai_server import FakeOpenAI
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig
from tests.resources.test_llm import make_llm, requests_for
from warmth_assets.lib import costs


def test_budget_stops_before_sending_and_counts_what_was_spent(tmp_path, openai_server):
    prices = {"gpt-4o-2024-08-06": {"input": 2.5, "output": 10.0}}
    first = requests_for([f"question {i}" for i in range(4)], max_tokens=100)
    bound = costs.pending_usd(first, prices)
    llm = make_llm(tmp_path, openai_server, budget_usd=bound)
    llm.complete_many(first)  # fits exactly: nothing spent yet
    spent = llm.spent_usd()
    assert 0 < spent < bound  # the real answers were shorter than their cap

    more = requests_for([f"another {i}" for i in range(4)], max_tokens=100)
    with pytest.raises(costs.BudgetExceeded, match=r"4 uncached calls may cost up to \$.* over the budget"):
        llm.complete_many(more)
    assert openai_server.total_attempts == 4  # nothing of the second batch was sent
    results, usage = llm.complete_many(first)  # cached answers cost nothing and still come back
    assert usage.cache_hits == 4 and openai_server.total_attempts == 4


def test_no_budget_means_no_limit(tmp_path, openai_server):
    llm = make_llm(tmp_path, openai_server, budget_usd=0.0)
    llm.complete_many(requests_for(["q"], max_tokens=10**6))
    assert openai_server.total_attempts == 1


def test_the_provider_limit_is_shared_by_separate_resources(tmp_path):
    server = FakeOpenAI().start()
    try:
        def run(name: str, limit: int):
            llm = make_llm(tmp_path / name, server, max_concurrency=6, max_concurrency_per_provider=limit,
                           slots_dir=str(tmp_path / "locks"))
            (tmp_path / name).mkdir(exist_ok=True)
            llm.complete_many(requests_for([f"{name} {i}" for i in range(12)]))

        # The server answers in groups of 3: the limit is reached for sure, and a limit that let more
        # through would show as more than 3 requests in flight at once.
        server.barrier = threading.Barrier(3)
        threads = [threading.Thread(target=run, args=(f"run{i}", 3)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert server.total_attempts == 24 and server.max_in_flight == 3  # 2 runs x 6 threads, 3 at a time

        server.max_in_flight, server.barrier = 0, threading.Barrier(6)
        run("unbounded", 0)
        assert server.max_in_flight == 6  # without the shared limit each run has its own 6
    finally:
        server.stop()


def test_batch_mode_submits_once_collects_into_the_cache_and_resumes(tmp_path, openai_server):
    llm = make_llm(tmp_path, openai_server, batch_min_requests=3, batch_poll_s=0.01, batch_poll_cap_s=0.02)
    reqs = requests_for([f"question {i}" for i in range(5)] + ["question [fail]"])
    with pytest.raises(Exception, match=r"1 of 6 calls failed.*internal error"):
        llm.complete_many(reqs)
    assert len(openai_server.batches) == 1 and openai_server.total_attempts == 0  # no synchronous calls
    cached = llm.warehouse.query_df("SELECT response_text FROM llm_calls ORDER BY response_text")
    assert cached["response_text"].tolist() == [f"answer to: question {i}" for i in range(5)]

    # The five answered come from the cache.
    results, usage = llm.complete_many(reqs[:5])
    assert usage.cache_hits == 5 and len(openai_server.batches) == 1
    assert [r.text for r in results] == [f"answer to: question {i}" for i in range(5)]
    # A batch whose every line failed is submitted again, not re-read.
    llm_all = make_llm(tmp_path, openai_server, batch_min_requests=1, batch_poll_s=0.01, batch_poll_cap_s=0.02)
    failing = requests_for(["again [fail]", "and [fail]"])
    for attempt in (1, 2):
        with pytest.raises(Exception, match="2 of 2 calls failed"):
            llm_all.complete_many(failing)
        assert len(openai_server.batches) == 1 + attempt


def test_a_run_killed_while_waiting_polls_the_same_batch(tmp_path, openai_server):
    openai_server.polls_until_done = 10**9  # never finishes while the first run waits
    llm = make_llm(tmp_path, openai_server, batch_min_requests=2, batch_poll_s=0.01, batch_poll_cap_s=0.01,
                   batch_timeout_s=0.2)
    reqs = requests_for(["a", "b", "c"])
    with pytest.raises(TimeoutError, match="will not be submitted twice"):
        llm.complete_many(reqs)
    openai_server.polls_until_done = 0
    results, _ = llm.complete_many(reqs)
    assert len(openai_server.batches) == 1 and [r.text for r in results] == ["answer to: a", "answer to: b",
                                                                              "answer to: c"]


def test_local_batches_respect_the_character_budget(tiny_chat_model, monkeypatch):
    """Prompts sorted by length; a batch is cut before rows x longest prompt passes the budget."""
    from resources.local_lm import LocalLMResource
    from warmth_assets.lib.llm_requests import ChatRequest

    sizes = []
    lm = LocalLMResource(source_kind="local", source=str(tiny_chat_model), batch_size=4, batch_max_chars=120)
    real = type(lm)._model

    def spy(self):
        model, tokenizer, context = real(self)
        original = model.generate

        def generate(**kwargs):
            sizes.append(kwargs["input_ids"].shape[0])
            return original(**kwargs)

        monkeypatch.setattr(model, "generate", generate)
        return model, tokenizer, context

    monkeypatch.setattr(type(lm), "_model", spy)
    texts = ["hello"] * 5 + ["hello friend " * 4] * 2 + ["hello friend how are you " * 4]
    lm.generate([ChatRequest.build([{"role": "user", "content": t}], model="t",
                                   config=GenerateConfig(max_tokens=2)) for t in texts])
    # four "hello" (the batch size); the fifth with one 52-char prompt (2 x 52 <= 120); the other 52-char
    # prompt alone (3 x 52 > 120); the 100-char prompt alone (2 x 100 > 120)
    assert sizes == [4, 2, 1, 1]


def test_with_a_budget_an_unpriced_model_is_refused_and_fine_tuned_models_take_their_base_price(tmp_path, openai_server):
    llm = make_llm(tmp_path, openai_server, budget_usd=100.0)
    unknown = [ChatRequest.build([{"role": "user", "content": "q"}], model="gpt-5-preview")]
    with pytest.raises(costs.BudgetExceeded, match=r"no price for \['gpt-5-preview'\]"):
        llm.complete_many(unknown)
    assert openai_server.total_attempts == 0
    fine_tuned = [ChatRequest.build([{"role": "user", "content": "q"}], model="ft:gpt-4o-2024-08-06:org:warm-e2:abc",
                                    config=GenerateConfig(max_tokens=10))]
    llm.complete_many(fine_tuned)  # priced as gpt-4o-2024-08-06: allowed, and counted as spent
    assert openai_server.total_attempts == 1 and llm.spent_usd() > 0
