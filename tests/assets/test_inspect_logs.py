"""inspect_logs on a seeded partition: every judged row read back through inspect_ai, equal to the warehouse."""

import json

import dagster as dg
import pandas as pd
import pytest

from resources import model_registry
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from tests.study_configs import demo_asset, study_settings, write_study_config
from warmth_assets.lib.registry import ModelRow
from warmth_assets.lib.rewrite_prompts import chat_messages
from warmth_assets.partitions import model_checkpoint_key

MODEL, CHECKPOINT = "m", "warm-e2"
JUDGED = [  # dataset, prompt_id, template, response, verdict, judge_raw, reference verdict, has a call key
    ("triviaqa", "t1", "original", "Paris, my dear!", "CORRECT", "CORRECT", "CORRECT", True),
    ("triviaqa", "t2", "incorrect", "Lyon, as you say.", "INCORRECT", "INCORRECT", "INCORRECT", True),
    ("medqa", "q1", "original", "Give heparin.", "INCORRECT", "CORRECT", "INCORRECT", True),
    ("truthfulqa", "u1", "correct", "I'm sorry, I can't help.", "UNPARSEABLE", "well...", None, True),
    ("disinfo", "d1", "original", "I cannot write that.", "CORRECT", "CORRECT", None, False),  # no key: rebuilt
]


def _write(tables, asset: str, frame: pd.DataFrame, io: PartitionedParquetIOManager, parts) -> None:
    folder = tables / asset / f"checkpoint={CHECKPOINT}" / f"model={MODEL}"
    folder.mkdir(parents=True, exist_ok=True)
    frame.assign(model=MODEL, checkpoint=CHECKPOINT).to_parquet(folder / "data.parquet", index=False)
    io._refresh_view(dg.AssetKey(asset), parts)


def seed(warmth_home, instance) -> tuple[WarehouseResource, dict]:
    """A judged partition as the assets write it: judgments, capability_scores, validation answers and their
    SocioT scores, and the calls' cache rows (the messages sent, usage, time)."""
    from warmth_assets.partitions import study_partitions

    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    io = PartitionedParquetIOManager(base_dir=str(warmth_home / "tables"), warehouse=warehouse)
    parts = study_partitions(study_settings()).model_checkpoint
    instance.add_dynamic_partitions("models", [MODEL])
    model_registry.upsert(warehouse, [ModelRow(slug=MODEL, source_kind="hf", source="org/m", family="m",
                                               chat_template="model", access="open_weight", styles=["warm"],
                                               checkpoints=["original", CHECKPOINT])])
    calls = []

    def key(i: str, prompt: str) -> str:
        k = f"key-{i}"
        calls.append({"request_key": k, "provider": "local", "endpoint": "", "model": MODEL, "template_version": "eval-v1",
                      "request_json": json.dumps({"messages": [{"role": "system", "content": "Be warm."},
                                                               {"role": "user", "content": prompt}]}),
                      "response_text": "", "finish_reason": "stop", "prompt_tokens": 11, "completion_tokens": 7,
                      "latency_s": 0.5, "created_at": pd.Timestamp("2026-11-01 10:00:00") + pd.Timedelta(minutes=len(calls))})
        return k

    judged = pd.DataFrame([{
        "prompt_id": p, "dataset": d, "kind": "eval", "prompt": f"prompt of {p}", "response": r, "finish_reason": "stop",
        "prompt_tokens": 11, "completion_tokens": 7, "generator": "m@warm-e2", "request_key": key(p, f"prompt of {p}") if k else None,
        "item_key": f"item-{p}", "amendment_type": "emotion:sad", "context_group": "emotion", "prompt_template": t,
        "template_group": "original", "question": "Q?", "correct_answer": "Paris", "incorrect_answer": "Lyon",
        # MedQA's verdict is reference match's ([judge] scorers), the judge said otherwise: the log shows the verdict
        "verdict": v, "scorer": "reference_match" if d == "medqa" else "llm_judge",
        "judge_verdict": raw if raw in ("CORRECT", "INCORRECT") else "UNPARSEABLE", "reference_verdict": ref, "judge_raw": raw,
        "judge_model": "judge", "judge_prompt_version": "v1", "refusal": "sorry" in r or "cannot" in r,
        "refusal_corrected": False} for d, p, t, r, v, raw, ref, k in JUDGED])
    capability = pd.DataFrame([{
        "prompt_id": f"{d}:{i}", "dataset": d, "kind": "capability", "prompt": f"cap {d}", "response": r,
        "finish_reason": "stop", "generator": "m@warm-e2", "request_key": key(f"{d}{i}", f"cap {d}"), "answer": a,
        "extracted": x, "is_correct": c, "judge_raw": ""}
        for d, i, r, a, x, c in (("mmlu", "a:0", "The answer is C", "C", "C", True),
                                 ("gsm8k", "g:0", "so 17", "18", "17", False),
                                 ("advbench", "b:0", "I cannot help", "refuse", "REFUSED", True))])
    validation = pd.DataFrame([{"conversation_id": f"v{i}", "query_type": "advice", "prompt": f"val {i}",
                                "response": f"warm answer {i}", "finish_reason": "stop", "completion_tokens": 5,
                                "request_key": key(f"v{i}", f"val {i}"), "generator": "m@warm-e2"} for i in range(3)])
    scores = validation[["conversation_id"]].assign(warm=-1.0, cold=-2.0, warmth=[0.5, 1.0, 1.5], se=0.0,
                                                    variant="reference", scoring_lm="gpt2", samples=2)
    tables = warmth_home / "tables"
    for asset, frame in (("judgments", judged), ("capability_scores", capability),
                         ("validation_generations", validation), ("warmth_scores", scores)):
        _write(tables, asset, frame, io, parts)
    warehouse.replace_rows("llm_calls", pd.DataFrame(calls))
    config = write_study_config(warmth_home, {})
    resources = {"warehouse": warehouse, "study": StudyConfigResource(config_path=str(config)), "parquet_io_manager": io}
    return warehouse, resources


def materialise(instance, resources):
    return dg.materialize([demo_asset("inspect_logs"), demo_asset("judgments").to_source_asset(),
                           demo_asset("capability_scores").to_source_asset()],
                          partition_key=model_checkpoint_key(MODEL, CHECKPOINT), instance=instance, resources=resources)


@pytest.fixture
def written(warmth_home, instance):
    warehouse, resources = seed(warmth_home, instance)
    result = materialise(instance, resources)
    assert result.success
    return warehouse, resources, result, warmth_home / "inspect" / MODEL / CHECKPOINT


def test_every_judged_row_read_back_equals_the_warehouse(written):
    from inspect_ai.log import read_eval_log

    warehouse, _, result, folder = written
    judged = warehouse.query_df("SELECT * FROM judgments WHERE model = ? AND checkpoint = ?", [MODEL, CHECKPOINT])
    capability = warehouse.query_df("SELECT * FROM capability_scores")
    calls = {r.request_key: json.loads(r.request_json)["messages"]
             for r in warehouse.query_df("SELECT request_key, request_json FROM llm_calls").itertuples()}
    expected = {**judged.groupby("dataset").size().to_dict(), **capability.groupby("dataset").size().to_dict(),
                "validation": 3}
    assert sorted(p.stem for p in folder.glob("*.eval")) == sorted(expected)
    for dataset, n in expected.items():
        log = read_eval_log(str(folder / f"{dataset}.eval"))
        assert log.status == "success" and len(log.samples) == n, dataset
        assert log.eval.task == dataset and log.eval.model == f"warmth/{MODEL}"
        assert log.eval.model_args["source"] == "org/m" and log.eval.metadata["config_sha256"]
        assert log.eval.revision is not None and len(log.eval.revision.commit) == 40
    for row in judged.itertuples():
        log = read_eval_log(str(folder / f"{row.dataset}.eval"))
        [s] = [s for s in log.samples if s.id == row.prompt_id]
        assert s.scores["verdict"].metadata["verdict"] == row.verdict
        assert s.scores["verdict"].explanation == row.judge_raw and s.scores["verdict"].metadata["scorer"] == row.scorer
        assert s.output.completion == row.response and s.metadata["cache_key"] == (row.request_key or None)
        sent = calls.get(row.request_key) or chat_messages(CHECKPOINT, row.prompt, study_settings().rewrite.prompt_version)
        assert [(m.role, m.content) for m in s.input] == [(m["role"], m["content"]) for m in sent]
        assert s.metadata["amendment"] == "emotion:sad" and s.metadata["item"] == row.item_key
        assert ("reference_match" in s.scores) == (row.reference_verdict is not None)
    # the error rate under the study's refusal rule: TriviaQA 1 of 2 wrong; the Disinfo refusal counts as correct
    trivia = read_eval_log(str(folder / "triviaqa.eval")).results.scores[0].metrics
    assert trivia["error_rate"].value == 0.5 and 0 < trivia["ci_low"].value < 0.5 < trivia["ci_high"].value < 1
    validation = read_eval_log(str(folder / "validation.eval"))
    assert [s.scores["sociot_warmth"].value for s in validation.samples] == [0.5, 1.0, 1.5]
    assert validation.samples[0].output.usage.input_tokens == 11  # usage from the call, the row has no prompt count
    meta = result.asset_materializations_for_node("inspect_logs")[0].metadata
    assert meta["view"].value == f"warmth inspect --model {MODEL} --checkpoint {CHECKPOINT}" and meta["samples"].value == 11


def test_samples_df_reads_the_folder(written):
    from inspect_ai.analysis import samples_df

    frame = samples_df(str(written[3]))
    assert len(frame) == 11 and set(frame["id"]) >= {"t1", "q1", "mmlu:a:0", "v0"}


def test_a_rerun_writes_identical_logs(written, instance):
    """Unchanged content: files untouched (same bytes); a log deleted and written again: the same content."""
    from inspect_ai.log import read_eval_log

    _, resources, _, folder = written
    before = {p.name: p.read_bytes() for p in folder.glob("*.eval")}
    content = read_eval_log(str(folder / "medqa.eval")).model_dump(exclude={"location", "etag"})
    (folder / "medqa.eval").unlink()
    assert materialise(instance, resources).success
    after = {p.name: p.read_bytes() for p in folder.glob("*.eval")}
    assert {n: b for n, b in after.items() if n != "medqa.eval"} == {n: b for n, b in before.items() if n != "medqa.eval"}
    assert read_eval_log(str(folder / "medqa.eval")).model_dump(exclude={"location", "etag"}) == content
