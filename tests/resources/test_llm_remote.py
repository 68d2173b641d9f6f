"""complete_on_threads on its own: answers journaled, folded in groups while calls are still in flight, failed
calls reported, anything else raised with every answer that arrived kept."""

import threading

import pytest

from resources import call_journal
from resources.llm_remote import LLMCallError, complete_on_threads
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage

GENEROUS_S = 120  # a bound on a wait that returns as soon as its event happens; never a measured time


def _requests(n):
    return [ChatRequest.build([{"role": "user", "content": f"q{i}"}], model="m", template_version="t")
            for i in range(n)]


def _answer(request, key):
    return ChatResult(key=key, text=f"a:{request.messages[0][1]}", finish_reason="stop", prompt_tokens=3,
                      completion_tokens=2, latency_s=0.0, model=request.model)


def _row(request, result):
    return {"request_key": result.key, "response_text": result.text}


def _run(requests, call, tmp_path, *, flush_every, flush_interval_s=0.0, max_concurrency=1, store_rows=None):
    todo = {f"k{i}": [i] for i in range(len(requests))}
    results, usage, failures, folds = [None] * len(requests), Usage(), [], []
    complete_on_threads(requests, todo, results, usage, failures, call=call, row=_row,
                        store_rows=store_rows or (lambda rows: folds.append(list(rows))),
                        journal_dir=tmp_path / "j", max_concurrency=max_concurrency, flush_every=flush_every,
                        flush_interval_s=flush_interval_s)
    return results, usage, failures, folds


def test_answers_are_folded_while_later_calls_wait(tmp_path):
    # Calls from the third on wait until a fold has happened: the run can only finish if answers are
    # shared with the cache mid-run, not just at the end.
    folded = threading.Event()
    folds = []

    def store(rows):
        folds.append(list(rows))
        if rows:
            folded.set()

    def call(request, key):
        if int(key[1:]) >= 2:
            assert folded.wait(GENEROUS_S), "no fold while calls were in flight"
        return _answer(request, key)

    results, usage, failures, _ = _run(_requests(6), call, tmp_path, flush_every=2, store_rows=store)
    assert failures == [] and usage.requests_sent == 6
    assert [r.text for r in results] == [f"a:q{i}" for i in range(6)]
    stored = [row["request_key"] for group in folds for row in group]
    assert sorted(stored) == [f"k{i}" for i in range(6)]  # each answer stored exactly once
    assert [row["request_key"] for row in folds[0]] == ["k0", "k1"]  # the first fold: the first group
    assert not list((tmp_path / "j").glob("*.jsonl"))  # all stored: the journal is removed


def test_no_fold_before_the_interval_only_at_the_end(tmp_path):
    results, usage, failures, folds = _run(_requests(5), _answer, tmp_path, flush_every=1, flush_interval_s=3600)
    assert [len(group) for group in folds if group] == [5]
    assert usage.requests_sent == 5 and failures == []


def test_failed_calls_are_reported_and_the_others_kept(tmp_path):
    def call(request, key):
        if key == "k1":
            raise LLMCallError("m: HTTP 400 (not retryable): bad")
        return _answer(request, key)

    results, usage, failures, folds = _run(_requests(3), call, tmp_path, flush_every=25, max_concurrency=2)
    assert failures == ["m: HTTP 400 (not retryable): bad"]
    assert results[1] is None and results[0].text == "a:q0" and results[2].text == "a:q2"
    assert sorted(row["request_key"] for group in folds for row in group) == ["k0", "k2"]
    assert usage.requests_sent == 2


def test_an_unexpected_error_is_raised_and_every_answer_kept(tmp_path):
    def call(request, key):
        if key == "k0":
            raise ValueError("a bug")
        return _answer(request, key)

    folds = []
    with pytest.raises(ValueError, match="a bug"):
        _run(_requests(4), call, tmp_path, flush_every=25, max_concurrency=2, store_rows=folds.append)
    assert sorted(row["request_key"] for group in folds for row in group) == ["k1", "k2", "k3"]
    # The run did not end cleanly, so its journal stays for the next run to fold (it holds the same rows).
    orphans = call_journal.collect_orphans(tmp_path / "j")
    assert sorted(row["request_key"] for row in orphans.rows) == ["k1", "k2", "k3"]
    orphans.release(remove=True)
