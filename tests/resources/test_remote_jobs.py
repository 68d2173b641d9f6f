"""The remote-job ledger (resources/remote_jobs.py) on its own, and fine-tuning jobs through it: recorded at
creation and at every status, polled with a capped jittered delay, resumed after a timeout, never paid twice.
Batches through the same ledger: tests/resources/test_llm_guards.py."""

import random
from types import SimpleNamespace

import openai
import pytest

from resources import remote_jobs
from resources.openai_finetune import FineTuneError, finetune_ledger, job_fingerprint, run_finetune
from resources.remote_jobs import Ledger, RemoteJobTimeout
from resources.warehouse import WarehouseResource


def ledger_of(tmp_path) -> Ledger:
    return Ledger(WarehouseResource(database=str(tmp_path / "w.duckdb")), table="llm_batches", key_column="batch_key",
                  id_column="batch_id", terminal=frozenset({"completed"}), kind="batch",
                  finished=frozenset({"collected"}))


def statuses(*names):
    remotes = iter(SimpleNamespace(id="b1", status=s) for s in names)
    return lambda job_id: next(remotes)


def test_wait_records_every_status_and_backs_off_with_jitter_to_the_cap(tmp_path, monkeypatch):
    slept = []
    monkeypatch.setattr(remote_jobs.time, "sleep", slept.append)
    ledger = ledger_of(tmp_path)
    created = {"endpoint": "e", "n_requests": 3}
    seen = []
    real_record = ledger.record

    def record(key, remote, created):
        seen.append(remote.status)
        real_record(key, remote, created)

    monkeypatch.setattr(Ledger, "record", lambda self, key, remote, created: record(key, remote, created))
    done = ledger.wait("k", "b1", statuses("validating", "in_progress", "in_progress", "in_progress", "completed"),
                       created, poll_s=1.0, poll_cap_s=3.0, deadline=float("inf"), timeout_s=60, rng=random.Random(0))
    assert done.status == "completed" and seen == ["validating", "in_progress", "in_progress", "in_progress",
                                                    "completed"]
    nominal = [1.0, 2.0, 3.0, 3.0]  # doubling, capped
    assert len(slept) == 4 and all(0.8 * n <= s <= 1.2 * n for s, n in zip(slept, nominal))
    assert len({round(s / n, 6) for s, n in zip(slept, nominal)}) > 1  # jittered, not in step
    entry = ledger.lookup("k")
    assert (entry.job_id, entry.status, entry.state["n_requests"]) == ("b1", "completed", 3)


def test_a_passed_deadline_raises_and_keeps_the_record(tmp_path, monkeypatch):
    monkeypatch.setattr(remote_jobs.time, "sleep", lambda s: pytest.fail("slept after the deadline"))
    ledger = ledger_of(tmp_path)
    with pytest.raises(RemoteJobTimeout, match="batch b1 still in_progress.*will not be submitted twice"):
        ledger.wait("k", "b1", statuses("in_progress"), {"endpoint": "e", "n_requests": 1}, poll_s=1, poll_cap_s=1,
                    deadline=float("-inf"), timeout_s=5, rng=random.Random(0))
    assert ledger.running(ledger.lookup("k"))  # a re-run finds it and resumes the wait
    ledger.mark("k", "collected")
    assert ledger.lookup("k").status == "collected" and not ledger.running(ledger.lookup("k"))
    assert ledger.lookup("other") is None and not ledger.running(None)


def finetune(tmp_path, server, epochs, **kw):
    jsonl = tmp_path / "openai.jsonl"
    jsonl.write_text('{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n')
    client = openai.OpenAI(api_key="sk-x", base_url=server.base_url, max_retries=0)
    options = dict(jsonl=jsonl, data_sha256="d" * 64, base_model="gpt-4o-2024-08-06", model_slug="gpt-4o",
                   style="warm", epochs_list=epochs, lr_multiplier=0.25, seed=7, poll_s=0.01, poll_cap_s=0.02,
                   log=lambda message: None)
    options.update(kw)
    return run_finetune(client, WarehouseResource(database=str(tmp_path / "w.duckdb")), **options)


def test_a_finetune_killed_while_waiting_polls_the_same_job(tmp_path, openai_server):
    openai_server.polls_until_done = 10**9  # never finishes while the first run waits
    with pytest.raises(RemoteJobTimeout, match=r"fine-tuning job ftjob-000001 still \w+ after"):
        finetune(tmp_path, openai_server, [1.0], timeout_s=0.05)
    openai_server.polls_until_done = 0
    jobs = finetune(tmp_path, openai_server, [1.0])
    assert len(openai_server.jobs) == 1 and len(openai_server.files) == 1  # resumed, not created again
    assert jobs[0].job_id == "ftjob-000001" and jobs[0].fine_tuned_model.startswith("ft:gpt-4o-2024-08-06:test:")


def test_a_failed_job_is_created_anew_and_its_row_points_at_the_new_one(tmp_path, openai_server):
    openai_server.polls_until_done = 0
    openai_server.failing_jobs = {"ftjob-000001"}
    with pytest.raises(FineTuneError, match="ftjob-000001 .* ended failed"):
        finetune(tmp_path, openai_server, [1.0])
    jobs = finetune(tmp_path, openai_server, [1.0])
    assert jobs[0].job_id == "ftjob-000002" and jobs[0].status == "succeeded"
    ledger = finetune_ledger(WarehouseResource(database=str(tmp_path / "w.duckdb")))
    entry = ledger.lookup(job_fingerprint("gpt-4o-2024-08-06", "d" * 64, 1.0, 0.25, 7))
    assert (entry.job_id, entry.status) == ("ftjob-000002", "succeeded")
    assert entry.state["fine_tuned_model"] == jobs[0].fine_tuned_model
    # a third run reuses it: nothing created
    finetune(tmp_path, openai_server, [1.0])
    assert len(openai_server.jobs) == 2


def test_a_budget_without_a_training_price_creates_nothing(tmp_path, openai_server):
    checked = []
    with pytest.raises(Exception, match="no training price"):
        finetune(tmp_path, openai_server, [1.0, 2.0], check_budget=lambda usd, n: checked.append((usd, n)))
    assert not openai_server.jobs and not openai_server.files and not checked
    finetune(tmp_path, openai_server, [1.0, 2.0], price_per_million_tokens=25.0,
             check_budget=lambda usd, n: checked.append((usd, n)))
    assert checked and checked[0][1] == 2 and checked[0][0] > 0  # both jobs, priced, checked before creation
