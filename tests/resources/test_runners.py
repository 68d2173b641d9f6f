"""runner_for, the one factory of generation runners: which backend answers a checkpoint, and what it keeps
of the `llm` resource (above all the cross-process limit per endpoint, on the vLLM path too)."""

import threading

from resources.runners import runner_for
from tests.openai_server import FakeOpenAI
from tests.resources.test_llm import make_llm, requests_for
from tests.study_configs import study_settings

OPEN = {"access": "open_weight", "source": "HuggingFaceTB/SmolLM2-135M-Instruct", "source_kind": "hf", "slug": "s",
        "chat_template": "model"}
LORA = {"kind": "lora", "path": "/adapters/warm-e2", "sha256": "abc", "fine_tuned_model": ""}
BASE = {"kind": "base", "path": "", "sha256": "", "fine_tuned_model": ""}


def served(url: str, max_concurrency: int = 24):
    return study_settings({"serving": {"vllm_base_url": url, "max_concurrency": max_concurrency}}, new={"serving"})


def test_each_backend_and_the_name_its_requests_carry(tmp_path, openai_server):
    llm = make_llm(tmp_path, openai_server, max_concurrency=2, max_concurrency_per_provider=5, max_retries=4,
                   batch_min_requests=10, budget_usd=3.0)
    local = runner_for(llm, study_settings(), OPEN, LORA, "warm-e2")
    assert local.llm.in_process and local.model == "s" and local.backend == "transformers"
    assert local.generator == local.llm.endpoint == "local:hf:HuggingFaceTB/SmolLM2-135M-Instruct@abc"
    assert local.llm.local.adapter_path == "/adapters/warm-e2" and not local.server

    api = runner_for(llm, study_settings(), {**OPEN, "access": "api", "source": "gpt-4o"},
                     {**BASE, "fine_tuned_model": "ft:gpt-4o:x"}, "warm-e2")
    assert api.llm is llm and api.model == api.generator == "ft:gpt-4o:x" and api.backend == "openai"

    vllm = runner_for(llm, served("http://127.0.0.1:9/v1"), OPEN, LORA, "warm-e2")
    assert vllm.server == vllm.llm.base_url == "http://127.0.0.1:9/v1" and vllm.model == vllm.generator == "warm-e2"
    assert vllm.llm.endpoint == "http://127.0.0.1:9/v1" and vllm.backend == "openai"
    # [serving]'s concurrency (vLLM batches what it is sent); the rest of [llm] carried over; a local server
    # has no Batch API and costs nothing
    assert vllm.llm.max_concurrency == 24 and vllm.llm.max_concurrency_per_provider == 5
    assert vllm.llm.max_retries == 4 and vllm.llm.batch_min_requests == 0 and vllm.llm.budget_usd == 0
    # the base weights under the name `warmth vllm-command` serves them as (--served-model-name <slug>)
    assert runner_for(llm, served("http://127.0.0.1:9/v1"), OPEN, BASE, "original").model == "s"
    # validation answers stay in-process (use_server=False) whatever [serving] says
    assert runner_for(llm, served("http://127.0.0.1:9/v1"), OPEN, LORA, "warm-e2", use_server=False).llm.in_process


def test_the_vllm_runner_answers_through_its_own_client(tmp_path):
    """The runner is a copy of `llm`: it must not reuse the client `llm` built for another endpoint."""
    api_server, vllm_server = FakeOpenAI().start(), FakeOpenAI().start()
    try:
        llm = make_llm(tmp_path, api_server)
        llm.complete_many(requests_for(["to the api"]))  # builds llm's client
        runner = runner_for(llm, served(vllm_server.base_url), OPEN, LORA, "warm-e2")
        runner.llm.complete_many(requests_for(["to vllm"]))
        assert api_server.total_attempts == 1 and vllm_server.total_attempts == 1
    finally:
        api_server.stop()
        vllm_server.stop()


def test_the_vllm_runner_sends_the_servers_key_never_the_openai_key(tmp_path):
    """The [serving] server gets `vllm_api_key` (EnvVar VLLM_API_KEY in the code location), or no real key; the
    OpenAI key stays with the API. The key is no part of a call's cache key."""
    api_server, vllm_server = FakeOpenAI().start(), FakeOpenAI().start()
    try:
        keyed_llm = make_llm(tmp_path / "a", api_server, api_key="sk-openai-secret", vllm_api_key="vllm-secret")
        (tmp_path / "a").mkdir()
        keyed = runner_for(keyed_llm, served(vllm_server.base_url), OPEN, LORA, "warm-e2")
        keyed.llm.complete_many(requests_for(["to vllm"]))
        keyed_llm.complete_many(requests_for(["to the api"]))
        assert vllm_server.authorizations == {"Bearer vllm-secret": 1}
        assert api_server.authorizations == {"Bearer sk-openai-secret": 1}

        bare_llm = make_llm(tmp_path / "b", api_server, api_key="sk-openai-secret")
        (tmp_path / "b").mkdir()
        bare = runner_for(bare_llm, served(vllm_server.base_url), OPEN, LORA, "warm-e2")
        bare.llm.complete_many(requests_for(["to vllm, no key"]))
        assert vllm_server.authorizations["Bearer sk-openai-secret"] == 0
        request = requests_for(["same"])[0]
        assert keyed.llm.key(request) == bare.llm.key(request)
    finally:
        api_server.stop()
        vllm_server.stop()


def test_the_vllm_path_keeps_the_cross_process_limit(tmp_path):
    """Two runs, each a vLLM runner with 6 requests in flight ([serving] max_concurrency), share the endpoint's
    limit of 3 ([operations] max_api_concurrency_per_provider)."""
    server = FakeOpenAI().start()
    try:
        settings = served(server.base_url, max_concurrency=6)

        def run(name: str):
            llm = make_llm(tmp_path / name, server, max_concurrency_per_provider=3, slots_dir=str(tmp_path / "locks"))
            (tmp_path / name).mkdir()
            runner = runner_for(llm, settings, OPEN, LORA, "warm-e2")
            runner.llm.complete_many(requests_for([f"{name} {i}" for i in range(12)]))

        # The server answers in groups of 3: the limit is reached for sure, and a limit that let more
        # through would show as more than 3 requests in flight at once.
        server.barrier = threading.Barrier(3)
        threads = [threading.Thread(target=run, args=(f"run{i}",)) for i in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert server.total_attempts == 24 and server.max_in_flight == 3
    finally:
        server.stop()
