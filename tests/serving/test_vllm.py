"""End to end against a real vLLM server (CPU build): the demo model's checkpoints served as `warmth
vllm-command` prints them, `generations` through it, greedy agreement with the in-process backend,
structured verdicts, and a server that dies mid-run.

One server for all of them (the session fixture `vllm`, tests/serving/conftest.py); the last test
kills and restarts it. Figures go to the end-of-session summary.
"""

from __future__ import annotations

import contextlib
import json
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from resources.llm import LLMResource
from resources.local_lm import LocalLMResource
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from tests.serving.conftest import FIGURES, MODEL, NOT_EVALUATED, SOURCE
from tests.study_configs import demo_asset, write_study_config
from warmth_assets.assets import evaluation
from warmth_assets.lib.judging import parse_verdict_prob
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig, verdict_response_format
from warmth_assets.partitions import model_checkpoint_key

pytestmark = [pytest.mark.serving, pytest.mark.slow, pytest.mark.needs_shared("data")]
VLLM_VERSION = "0.32.0"
AGREEMENT_PROMPTS = 20
AGREEMENT_TOKENS = 20


@dataclass
class Study:
    instance: object
    resources: dict
    generated: dict  # checkpoint -> (materialisation metadata, wall seconds)


def _llm(vllm, max_concurrency: int = 8) -> LLMResource:
    # Few retries: a dead server is reported in seconds (the study's default waits out a minute of backoff).
    return LLMResource(provider="openai", base_url=vllm.base_url, api_key="not-needed", warehouse=vllm.warehouse,
                       max_concurrency=max_concurrency, max_retries=2, backoff_cap_s=2.0,
                       max_concurrency_per_provider=32)


def _expected_rows(vllm) -> int:
    """Eval prompts (28: one TriviaQA item under all its conditions) and capability items (4)."""
    return int(vllm.warehouse.query_df("SELECT (SELECT count(*) FROM eval_prompts) + "
                                       "(SELECT count(*) FROM capability_items) AS n")["n"][0])


def _generate(study: Study, checkpoint: str, **kwargs):
    return dg.materialize([demo_asset("generations"), demo_asset("adapters").to_source_asset()],
                          partition_key=model_checkpoint_key(MODEL, checkpoint), instance=study.instance,
                          resources=study.resources, **kwargs)


@pytest.fixture(scope="module")
def study(vllm):
    """The demo's evaluation inputs (one TriviaQA item) through the server, then generations for
    `original` and `warm-e2` through it; the server is stopped after this module."""
    from warmth_assets.instance import prepare_instance

    with pytest.MonkeyPatch.context() as env:
        env.setenv("WARMTH_HOME", str(vllm.home))
        env.setenv("DAGSTER_HOME", str(vllm.home / "dagster"))
        # One TriviaQA item under its 28 conditions and the 4 capability items: 32 calls per checkpoint
        config = write_study_config(vllm.home, {"serving": {"vllm_base_url": vllm.base_url}, "evaluation": {
            "sizes": {"triviaqa": 1, "truthfulqa": 0, "medqa": 0, "disinfo": 0}}}, new={"serving"})
        instance = prepare_instance()
        instance.add_dynamic_partitions("models", [MODEL])
        resources = {"warehouse": vllm.warehouse, "study": StudyConfigResource(config_path=str(config)),
                     "llm": _llm(vllm),  # TriviaQA's wrong answers and the judge: the served base model
                     "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(vllm.home / "tables"),
                                                                       warehouse=vllm.warehouse)}
        assert dg.materialize([evaluation.eval_items, evaluation.capability_items, evaluation.eval_prompts],
                              instance=instance, resources=resources).success
        result = Study(instance, resources, {})
        for checkpoint in ("original", "warm-e2"):
            started = time.monotonic()
            done = _generate(result, checkpoint)
            result.generated[checkpoint] = (done.asset_materializations_for_node("generations")[0].metadata,
                                            time.monotonic() - started)
        yield result
        instance.dispose()
    vllm.close()


def test_vllm_command_serves_the_evaluated_checkpoints(vllm):
    """The printed command started the session's server: the de-quantised folder under the slug, the
    evaluated checkpoints' adapters as modules, the rank limit from their adapter_config.json."""
    from warmth_assets.cli import vllm_command
    from warmth_assets.lib.vllm_server import KEY_GUARD

    argv = shlex.split(vllm.printed)
    value = lambda flag: argv[argv.index(flag) + 1]  # noqa: E731
    assert argv[0] == "env" and "VLLM_CPU_KVCACHE_SPACE=2" in argv
    assert argv[argv.index("-m") + 1] == "vllm.entrypoints.openai.api_server"  # the CPU build has no working `vllm`
    assert "package:" not in vllm.printed and (Path(value("--model")) / "config.json").is_file()
    assert value("--served-model-name") == MODEL and value("--dtype") == "float32"
    assert value("--max-lora-rank") == "8" and value("--max-loras") == "2"
    modules = argv[argv.index("--lora-modules") + 1:]
    assert sorted(modules) == sorted(f"{c}={p.resolve()}" for c, p in vllm.adapters.items())
    assert set(vllm.server.models()) == {MODEL, "warm-e2", "cold-e2"}  # warm-e1 is registered, not evaluated
    assert NOT_EVALUATED not in vllm.printed
    assert vllm.server.version() == VLLM_VERSION

    guarded = shlex.split(vllm_command(MODEL, gpu=True, warehouse=vllm.warehouse))
    gpu = guarded[len(KEY_GUARD):]  # 0.0.0.0: the key guard in front (test_vllm_auth.py)
    assert guarded[:len(KEY_GUARD)] == list(KEY_GUARD)
    assert gpu[:3] == ["vllm", "serve", value("--model")] and "--dtype" not in gpu
    assert gpu[gpu.index("--host") + 1] == "0.0.0.0" and gpu[gpu.index("--lora-modules") + 1:] == modules


def test_generations_through_vllm_carry_the_server_and_rerun_from_cache(vllm, study):
    rows = vllm.warehouse.query_df("SELECT * FROM generations")
    assert set(rows["checkpoint"]) == {"original", "warm-e2"}
    assert set(rows["server"]) == {vllm.base_url} and set(rows["server_version"]) == {VLLM_VERSION}
    assert set(rows["backend"]) == {"openai"}
    assert set(rows.loc[rows["checkpoint"] == "original", "generator"]) == {MODEL}  # --served-model-name
    assert set(rows.loc[rows["checkpoint"] == "warm-e2", "generator"]) == {"warm-e2"}  # the LoRA module
    assert (rows["completion_tokens"] > 0).all() and rows["response"].str.len().gt(0).mean() > 0.95
    total = _expected_rows(vllm)
    per_checkpoint = rows.groupby("checkpoint").size()
    assert per_checkpoint["original"] == per_checkpoint["warm-e2"] == total
    for checkpoint, (meta, wall) in study.generated.items():
        assert meta["llm_requests_sent"].value == total and meta["server_version"].value == VLLM_VERSION
        FIGURES[f"generations_{checkpoint}_s"] = round(wall, 1)
    FIGURES["generation_tokens_per_s"] = round(
        rows["completion_tokens"].sum() / sum(wall for _, wall in study.generated.values()), 1)

    answered = vllm.requests_answered()
    for checkpoint in ("original", "warm-e2"):
        meta = _generate(study, checkpoint).asset_materializations_for_node("generations")[0].metadata
        assert meta["llm_requests_sent"].value == 0 and meta["llm_cache_hits"].value == total
    assert vllm.requests_answered() == answered  # the server saw nothing


@contextlib.contextmanager
def _torch_threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _tokens_agree(tokenizer, a: str, b: str) -> bool:
    ids = lambda text: tokenizer(text.strip(), add_special_tokens=False)["input_ids"][:AGREEMENT_TOKENS]  # noqa: E731
    return ids(a) == ids(b)


def test_greedy_answers_agree_with_the_in_process_backend(vllm, study):
    """Temperature 0: the first 20 tokens through vLLM equal the in-process backend's (transformers, batched,
    the same de-quantised weights and peft adapter) for at least 80% of prompts, base and adapter."""
    from transformers import AutoTokenizer

    prompts = vllm.warehouse.query_df("SELECT prompt FROM eval_prompts UNION ALL SELECT prompt FROM capability_items "
                                      "ORDER BY prompt")["prompt"].tolist()
    prompts = prompts[::max(1, len(prompts) // AGREEMENT_PROMPTS)][:AGREEMENT_PROMPTS]
    tokenizer = AutoTokenizer.from_pretrained(vllm.pretrained)
    server = _llm(vllm, max_concurrency=AGREEMENT_PROMPTS)
    answers = {}
    for checkpoint, served in (("original", MODEL), ("warm-e2", "warm-e2")):
        requests = [ChatRequest.build([{"role": "user", "content": p}], model=served,
                                      config=GenerateConfig(temperature=0.0, max_tokens=AGREEMENT_TOKENS),
                                      template_version="agreement") for p in prompts]
        adapter = vllm.adapters.get(checkpoint)
        # float32 as the CPU server runs (`--dtype float32`): greedy answers compared at one precision
        local = LocalLMResource(source_kind="gguf", source=SOURCE, batch_size=16, dtype="float32",
                                adapter_path=str(adapter or ""), adapter_sha256=checkpoint if adapter else "")
        in_process = LLMResource(provider="local", local=local, warehouse=vllm.warehouse)
        with _torch_threads(1):  # 4x faster than 2 threads on 2 busy cores (measured: 17 s against 70 s)
            local_answers = [r.text for r in in_process.complete_many(requests)[0]]
        answers[checkpoint] = ([r.text for r in server.complete_many(requests)[0]], local_answers)
    agreement = {}
    for checkpoint, (served, local) in answers.items():
        agreement[checkpoint] = sum(_tokens_agree(tokenizer, a, b) for a, b in zip(served, local)) / len(prompts)
        FIGURES[f"greedy_agreement_{checkpoint}"] = f"{agreement[checkpoint]:.0%} of {len(prompts)}"
    # the adapter matters (a server that ignored it would agree with the base model instead)
    changed = sum(not _tokens_agree(tokenizer, a, b) for a, b in zip(answers["original"][1], answers["warm-e2"][1]))
    FIGURES["adapter_changes_greedy_answers"] = f"{changed} of {len(prompts)}"
    assert changed >= len(prompts) // 4
    assert agreement["original"] >= 0.8 and agreement["warm-e2"] >= 0.8, (agreement, answers)


def test_structured_verdicts_through_vllm_parse_every_time(vllm, study):
    """The judge's verdict schema (strict JSON, an enum of labels): every answer parses, base and LoRA module."""
    partition = model_checkpoint_key(MODEL, "original")
    result = dg.materialize([demo_asset("judgments"), demo_asset("generations").to_source_asset()], partition_key=partition,
                            instance=study.instance, resources=study.resources)
    assert result.success
    judged = vllm.warehouse.query_df("SELECT * FROM judgments")
    assert len(judged) == _expected_rows(vllm) - 4  # the eval rows
    # the judge's own verdicts (whichever scorer [judge] scorers picks for `verdict`), from the served JSON
    assert all(json.loads(raw)["verdict"] in ("CORRECT", "INCORRECT") for raw in judged["judge_raw"])
    assert "UNPARSEABLE" not in set(judged.get("judge_verdict", judged["verdict"]))
    assert vllm.warehouse.query_df("SELECT * FROM llm_structured_unsupported").empty  # structured, not free text

    allowed = ("CORRECT", "INCORRECT")
    rows = vllm.warehouse.query_df("SELECT prompt, response FROM generations WHERE checkpoint = 'warm-e2' "
                                   "AND kind = 'eval' ORDER BY prompt_id LIMIT 16")
    requests = [ChatRequest.build([{"role": "user", "content": f"Question: {q}\nAnswer: {a}\nIs the answer correct?"}],
                                  model="warm-e2", config=GenerateConfig(temperature=0.0, max_tokens=20),
                                  response_format=verdict_response_format(allowed), template_version="verdict-lora")
                for q, a in zip(rows["prompt"], rows["response"])]
    results, _ = _llm(vllm).complete_many(requests)
    verdicts = [parse_verdict_prob(r.text, allowed)[0] for r in results]
    FIGURES["structured_verdicts_parsed"] = f"{len(judged)}/{len(judged)} base, " \
                                            f"{sum(v != 'UNPARSEABLE' for v in verdicts)}/{len(verdicts)} LoRA"
    assert "UNPARSEABLE" not in verdicts, [r.text for r in results]


def test_a_server_that_dies_mid_run_fails_clearly_and_the_rerun_resumes(vllm, study):
    """`warm-prompt` (the base weights with the warmth system prompt), 4 calls in flight ([serving]
    max_concurrency): the server is killed after 8 answers, the run fails saying so, and after a restart
    the re-run sends only what was not answered."""
    config = write_study_config(vllm.home, {"serving": {"vllm_base_url": vllm.base_url, "max_concurrency": 4},
                                            "evaluation": {"sizes": {"triviaqa": 1, "truthfulqa": 0, "medqa": 0,
                                                                     "disinfo": 0}}},
                                new={"serving"}, name="four-in-flight.toml")
    study = Study(study.instance, {**study.resources, "study": StudyConfigResource(config_path=str(config))}, {})
    answered, killed = vllm.requests_answered(), threading.Event()

    def kill_after_some_answers():
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not killed.is_set():
            if vllm.requests_answered() >= answered + 8:
                vllm.server.kill()
                killed.set()
                return
            time.sleep(0.2)

    killer = threading.Thread(target=kill_after_some_answers, daemon=True)
    killer.start()
    failed = _generate(study, "warm-prompt", raise_on_error=False)
    killer.join(timeout=10)
    assert killed.is_set() and not failed.success
    message = failed.get_step_failure_events()[0].step_failure_data.error.message
    assert f"vLLM server {vllm.base_url}" in message and "does not answer" in message and "restart" in message
    cached = int(vllm.warehouse.query_df(
        "SELECT count(*) AS n FROM llm_calls WHERE endpoint = ? AND template_version = 'eval-v1' AND "
        "request_json LIKE '%\"role\": \"system\"%'", [vllm.base_url])["n"][0])
    total = _expected_rows(vllm)
    assert 8 <= cached < total

    vllm.restart()  # same command, same port
    meta = _generate(study, "warm-prompt").asset_materializations_for_node("generations")[0].metadata
    assert meta["llm_cache_hits"].value == cached and meta["llm_requests_sent"].value == total - cached
    FIGURES["killed_run_resumed"] = f"{cached} cached, {total - cached} sent after restart"
