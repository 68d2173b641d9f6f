"""When the call layer gives up or stops: a missing key refused before any call, a dead endpoint ending its batch
after a few calls, an interrupt ending a batch at once (no new call, no retry sleep) while the answers that
arrived are kept. Event-synchronised: every wait returns as soon as its event happens."""

import os
import signal
import socket
import threading

import pytest

from resources import call_journal, llm_remote
from resources.api_slots import ProviderSlots, SlotWaitCancelled
from resources.llm import EndpointUnreachable, LLMCallError, LLMResource, MissingAPIKey
from resources.llm_errors import Retryable, Stopped
from resources.llm_stop import BatchStop, RetryLog
from resources.warehouse import WarehouseResource
from tests.resources.test_llm import make_llm, requests_for
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, Usage

GENEROUS_S = 120  # bounds a wait that returns as soon as its event happens; never a measured time


@pytest.fixture(autouse=True)
def python_default_sigint():
    """SIGINT raises KeyboardInterrupt in the main thread, as in a fresh process: the tests below interrupt their own
    process, and a test that ran earlier on the same xdist worker (the order of files varies) may have left another
    handler installed; then the interrupt never arrived and the waits ran out (seen once in a clean-clone run)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


@pytest.fixture
def counted_calls(monkeypatch):
    """Every attempt the call layer makes, counted on the way to the real `call_once`."""
    attempts = []
    real = llm_remote.call_once

    def counting(client, request, key, slot, timeout_s):
        attempts.append(key)
        return real(client, request, key, slot, timeout_s)

    monkeypatch.setattr(llm_remote, "call_once", counting)
    return attempts


def _no_key_llm(tmp_path, **kw) -> LLMResource:
    return LLMResource(provider="openai", base_url=kw.pop("base_url", None), api_key=None,
                       warehouse=WarehouseResource(database=str(tmp_path / "w.duckdb")), **kw)


def test_a_missing_key_is_refused_before_any_call(tmp_path, monkeypatch, counted_calls):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = _no_key_llm(tmp_path)
    with pytest.raises(MissingAPIKey) as refused:
        llm.complete_many(requests_for(["q1", "q2"]), chosen_by="[evaluation] wrong_answer_model")
    message = str(refused.value)
    assert "\n" not in message
    for named in ("OPENAI_API_KEY", "gpt-4o-2024-08-06", "[evaluation] wrong_answer_model",
                  "https://api.openai.com/v1", '[llm] provider = "local"', "nothing was sent"):
        assert named in message, named
    assert counted_calls == []
    # Azure's hosts need a key as well; a server of one's own (vLLM, loopback) does not.
    with pytest.raises(MissingAPIKey):
        _no_key_llm(tmp_path, base_url="https://ours.openai.azure.com/openai/v1").complete_many(requests_for(["q"]))
    assert counted_calls == []


def test_answers_already_cached_need_no_key(tmp_path, monkeypatch, counted_calls):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    llm = _no_key_llm(tmp_path)
    request = requests_for(["cached one"])[0]
    llm.store([(request, ChatResult(key=llm.key(request), text="kept", finish_reason="stop", prompt_tokens=1,
                                    completion_tokens=1, latency_s=0.0, model=request.model))])
    results, usage = llm.complete_many([request])
    assert results[0].text == "kept" and usage.cache_hits == 1 and counted_calls == []


def test_a_server_of_ones_own_needs_no_key(tmp_path, openai_server):
    results, _ = make_llm(tmp_path, openai_server, api_key=None).complete_many(requests_for(["local"]))
    assert results[0].text.startswith("answer to: local")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_closed_port_ends_the_batch_after_a_few_calls_naming_the_endpoint(tmp_path, counted_calls):
    base_url = f"http://127.0.0.1:{_closed_port()}/v1"
    llm = LLMResource(provider="openai", base_url=base_url, api_key="sk-test-not-real", max_concurrency=2,
                      max_retries=6, backoff_base_s=0.05, backoff_cap_s=0.2, unreachable_after=3,
                      warehouse=WarehouseResource(database=str(tmp_path / "w.duckdb")))
    logged = []
    with pytest.raises(EndpointUnreachable, match=f"{base_url} is unreachable") as ended:
        llm.complete_many(requests_for([f"q{i}" for i in range(20)]), log=logged.append)
    assert "refused" in str(ended.value).lower()
    # Without the verdict: 20 calls x 7 attempts. With it: each caller's first try and its failed retries
    # until three retries in a row failed to connect.
    assert len(counted_calls) <= 2 * llm.max_concurrency + llm.unreachable_after, counted_calls
    assert len(set(counted_calls)) <= 2 * llm.max_concurrency
    assert len(logged) == 1 and "connection error x" in logged[0]  # one summary line for the batch's retries


def test_rate_limits_and_server_errors_keep_their_retries(tmp_path, openai_server):
    llm = make_llm(tmp_path, openai_server, unreachable_after=1, max_retries=3)
    with pytest.raises(LLMCallError, match="still failing after 4 attempts") as failed:
        llm.complete_many(requests_for(["always [fail]"]))
    assert not isinstance(failed.value, EndpointUnreachable)
    assert openai_server.total_attempts == 4


def test_a_first_connection_failure_is_a_blip_and_an_answer_resets_the_count():
    stop = BatchStop("http://x", unreachable_after=2)
    failure = llm_remote.NoConnection("connection error: refused")
    stop.no_connection(failure, attempt=0)
    stop.no_connection(failure, attempt=0)
    assert not stop.stopped
    stop.no_connection(failure, attempt=1)
    stop.answered()
    stop.no_connection(failure, attempt=1)
    assert not stop.stopped
    stop.no_connection(failure, attempt=2)
    assert stop.stopped and isinstance(stop.error, EndpointUnreachable)


def test_a_stop_ends_a_retry_sleep_at_once():
    stop, attempted, outcome = BatchStop("http://x", 3), threading.Event(), []

    def send():
        attempted.set()
        raise Retryable("HTTP 429", retry_after=3600.0)  # the server asks for an hour

    def retrying():
        try:
            llm_remote.with_retries(send, "m", max_retries=3, backoff_base_s=0.05, backoff_cap_s=1.0, usage=Usage(),
                                    lock=threading.Lock(), stop=stop, retry_log=RetryLog())
        except Stopped as exc:
            outcome.append(exc)

    thread = threading.Thread(target=retrying, daemon=True)
    thread.start()
    assert attempted.wait(GENEROUS_S)
    stop.stop()
    thread.join(GENEROUS_S)
    assert not thread.is_alive() and len(outcome) == 1


def test_a_stop_ends_the_wait_for_an_endpoint_slot(tmp_path):
    slots = ProviderSlots(tmp_path, "http://x", 1)
    cancel, outcome = threading.Event(), []

    def waiting():
        try:
            with slots.slot(cancel=cancel):
                outcome.append("got a slot")
        except SlotWaitCancelled:
            outcome.append("cancelled")

    with slots.slot():
        thread = threading.Thread(target=waiting, daemon=True)
        thread.start()
        cancel.set()
        thread.join(GENEROUS_S)
    assert outcome == ["cancelled"]


def _requests(n):
    return [ChatRequest.build([{"role": "user", "content": f"q{i}"}], model="m", template_version="t")
            for i in range(n)]


def _answer(request, key):
    return ChatResult(key=key, text=f"a:{key}", finish_reason="stop", prompt_tokens=1, completion_tokens=1,
                      latency_s=0.0, model=request.model)


def _interrupted_batch(tmp_path, call, *, grace_s):
    """Ten calls, one at a time; `call` interrupts the process (SIGINT, as Dagster's Terminate does)."""
    requests, stop, folds, called = _requests(10), BatchStop("http://x", 3), [], []
    todo = {f"k{i}": [i] for i in range(10)}

    def counted(request, key):
        called.append(key)
        return call(request, key, stop)

    with pytest.raises(KeyboardInterrupt):
        llm_remote.complete_on_threads(
            requests, todo, [None] * 10, Usage(), [], call=counted,
            row=lambda q, r: {"request_key": r.key}, store_rows=folds.extend, journal_dir=tmp_path / "j",
            max_concurrency=1, flush_every=25, flush_interval_s=3600, stop=stop, stop_grace_s=grace_s)
    return called, folds


def test_an_interrupt_starts_no_new_call_and_keeps_the_answer_in_flight(tmp_path):
    def call(request, key, stop):
        if key == "k2":
            os.kill(os.getpid(), signal.SIGINT)
            assert stop.event.wait(GENEROUS_S)  # answers after the stop, within the grace
        return _answer(request, key)

    called, folds = _interrupted_batch(tmp_path, call, grace_s=GENEROUS_S)
    assert called == ["k0", "k1", "k2"]  # nothing started after the interrupt
    assert [row["request_key"] for row in folds] == ["k0", "k1", "k2"]  # the answer in flight is kept


def test_an_answer_later_than_the_grace_stays_in_the_journal_for_the_next_run(tmp_path):
    release, returned = threading.Event(), threading.Event()

    def call(request, key, stop):
        if key == "k1":
            os.kill(os.getpid(), signal.SIGINT)
            assert release.wait(GENEROUS_S)  # the server answers after the run gave up waiting
            returned.set()
        return _answer(request, key)

    called, folds = _interrupted_batch(tmp_path, call, grace_s=0.0)
    assert called == ["k0", "k1"] and [row["request_key"] for row in folds] == ["k0"]
    release.set()
    assert returned.wait(GENEROUS_S)
    for thread in [t for t in threading.enumerate() if t.name.startswith("llm-call-")]:
        thread.join(GENEROUS_S)
    orphans = call_journal.collect_orphans(tmp_path / "j")  # the next run folds both answers
    assert sorted(row["request_key"] for row in orphans.rows) == ["k0", "k1"]
    orphans.release(remove=True)
