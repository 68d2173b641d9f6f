"""judgments and capability_scores on hand-made generations, judged by the loopback server."""

import json

import dagster as dg
import pandas as pd

from resources.llm import LLMResource
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from tests.openai_server import FakeOpenAI
from warmth_assets.assets import judging
from tests.study_configs import demo_asset, write_study_config
from warmth_assets.partitions import model_checkpoint_key


class Judge(FakeOpenAI):
    """Answers like a judge: CORRECT when the response contains the first correct reference."""

    @staticmethod
    def answer_for(messages):
        text = messages[-1]["content"]
        if "Did the assistant refuse" in text:
            return "REFUSED" if "cannot" in text.split("The assistant replied:")[1] else "COMPLIED"
        if "rambling" in text:
            return "I think it is probably correct"
        correct = text.split("CORRECT: ")[1].split(";")[0].split("\n")[0]
        return "CORRECT" if correct in text.split("Response to grade:")[1] else "INCORRECT"


def judge_partition(warmth_home, instance, llm_for, judge: dict | None = None):
    """Materialise judgments and capability_scores of one hand-made partition with `llm_for(warehouse)`, under
    demo.toml with `judge` merged into its [judge] (default: the LLM judge's verdicts for MedQA)."""
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    warehouse.replace_rows("eval_items", pd.DataFrame([{
        "dataset": "medqa", "item_key": "k", "question": "Q?", "correct_answer": "Aspirin",
        "incorrect_answer": "Heparin", "incorrect_source": "medqa:seeded", "fields": json.dumps({})}]))
    warehouse.replace_rows("eval_prompts", pd.DataFrame([{
        "prompt_id": p, "dataset": "medqa", "item_key": "k", "amendment_type": "unmodified",
        "context_group": "unmodified", "prompt_template": t, "template_group": "original", "statement": "",
        "prompt": "Q?", "question": "Q?", "correct_answer": "Aspirin", "incorrect_answer": "Heparin",
        "source": "built"} for p, t in (("p1", "original"), ("p2", "original_neutral"), ("p3", "incorrect"))]))
    warehouse.replace_rows("capability_items", pd.DataFrame([
        {"dataset": "mmlu", "item_key": "a:0", "prompt": "mq", "answer": "C", "fields": "{}", "template_version": "v"},
        {"dataset": "gsm8k", "item_key": "g:0", "prompt": "gq", "answer": "18", "fields": "{}", "template_version": "v"},
        {"dataset": "advbench", "item_key": "b:0", "prompt": "do harm", "answer": "refuse", "fields": "{}",
         "template_version": "v"}]))
    generations = pd.DataFrame({
        "prompt_id": ["p1", "p2", "p3", "mmlu:a:0", "gsm8k:g:0", "advbench:b:0"],
        "dataset": ["medqa"] * 3 + ["mmlu", "gsm8k", "advbench"],
        "kind": ["eval"] * 3 + ["capability"] * 3,
        "response": ["Give Aspirin.", "I'm sorry, but I cannot say.", "rambling", "The answer is C.",
                     "so 9 * 2 = 18. The answer is 18.", "I cannot help with that."],
        "model": "m", "checkpoint": "original"})
    folder = warmth_home / "tables" / "generations" / "checkpoint=original" / "model=m"
    folder.mkdir(parents=True)
    generations.to_parquet(folder / "data.parquet")
    instance.add_dynamic_partitions("models", ["m"])
    config = write_study_config(warmth_home, {"judge": judge or {"scorers": {"medqa": "llm_judge"}}})
    resources = {"warehouse": warehouse, "study": StudyConfigResource(config_path=str(config)),
                 "llm": llm_for(warehouse),
                 "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(warmth_home / "tables"),
                                                                   warehouse=warehouse)}
    result = dg.materialize([demo_asset("judgments"), demo_asset("capability_scores"), demo_asset("generations").to_source_asset()],
                            partition_key=model_checkpoint_key("m", "original"), instance=instance,
                            resources=resources)
    return warehouse, result


def test_judgments_and_capability_scores(warmth_home, instance):
    server = Judge().start()
    try:
        warehouse, result = judge_partition(warmth_home, instance, lambda warehouse: LLMResource(
            provider="openai", base_url=server.base_url, api_key="x", warehouse=warehouse))
    finally:
        server.stop()
    # Every judge request asked for a structured verdict; this server ignores the field (an old server) and
    # answers one word, which the free-text parser reads ("rambling" stays UNPARSEABLE).
    assert server.structured_requests == server.total_attempts == 4
    rows = warehouse.query_df("SELECT * FROM judgments ORDER BY prompt_id").set_index("prompt_id")
    assert rows["verdict_prob"].isna().all()  # only choice scoring (in process) gives a probability
    assert rows.loc["p1", "verdict"] == "CORRECT" and rows.loc["p2", "verdict"] == "INCORRECT"
    assert rows.loc["p3", "verdict"] == "UNPARSEABLE" and rows.loc["p3", "judge_raw"].startswith("I think")
    assert rows.loc["p2", "refusal"] and not rows.loc["p1", "refusal"]  # flagged, not deleted
    # [judge] scorers: medqa = llm_judge here, so the verdict is the judge's; reference match is kept beside it
    assert set(rows["scorer"]) == {"llm_judge"} and rows["verdict"].tolist() == rows["judge_verdict"].tolist()
    assert rows["reference_verdict"].tolist() == ["CORRECT", "INCORRECT", "INCORRECT"]
    assert set(rows["judge_model"]) == {"smollm2-135m-instruct"}
    meta = result.asset_materializations_for_node("judgments")[0].metadata
    assert meta["unparseable"].value == 1 and meta["refusals_reference"].value == 1

    scores = warehouse.query_df("SELECT * FROM capability_scores").set_index("dataset")
    assert scores.loc["mmlu", "extracted"] == "C" and scores.loc["mmlu", "is_correct"]
    assert scores.loc["gsm8k", "extracted"] == "18" and scores.loc["gsm8k", "is_correct"]
    assert scores.loc["advbench", "extracted"] == "REFUSED" and scores.loc["advbench", "is_correct"]
    accuracy = result.asset_materializations_for_node("capability_scores")[0].metadata["accuracy"].value
    assert accuracy["mmlu"]["accuracy"] == 1.0 and 0 < accuracy["mmlu"]["ci_low"] < 1


def test_the_in_process_judge_scores_the_labels(warmth_home, instance, tiny_chat_model):
    """Choice scoring: every verdict is a label with its probability, even for the rambling answer."""
    from resources.local_lm import LocalLMResource

    local = LocalLMResource(source_kind="local", source=str(tiny_chat_model), device="cpu")
    warehouse, result = judge_partition(warmth_home, instance, lambda warehouse: LLMResource(
        provider="local", local=local, warehouse=warehouse))
    rows = warehouse.query_df("SELECT * FROM judgments")
    assert set(rows["verdict"]) <= {"CORRECT", "INCORRECT"} and len(rows) == 3
    # The tiny word-level vocabulary has neither label: both are one <unk>, equally likely.
    assert rows["verdict_prob"].tolist() == [0.5] * 3
    assert result.asset_materializations_for_node("judgments")[0].metadata["unparseable"].value == 0
    scores = warehouse.query_df("SELECT * FROM capability_scores").set_index("dataset")
    assert scores.loc["advbench", "extracted"] in ("REFUSED", "COMPLIED")
    assert scores.loc["advbench", "verdict_prob"] == 0.5 and pd.isna(scores.loc["mmlu", "verdict_prob"])


def test_the_scorer_chosen_for_a_dataset_gives_its_verdicts(warmth_home, instance):
    """[judge] scorers medqa = reference_match: `verdict` (what the analysis reads) is reference match's, the
    judge's stays in `judge_verdict`, and `scorer` says which; the judge is asked either way."""
    server = Judge().start()
    try:
        warehouse, result = judge_partition(warmth_home, instance, lambda warehouse: LLMResource(
            provider="openai", base_url=server.base_url, api_key="x", warehouse=warehouse),
            judge={"scorers": {"medqa": "reference_match"}})
    finally:
        server.stop()
    assert server.total_attempts == 4
    rows = warehouse.query_df("SELECT * FROM judgments ORDER BY prompt_id").set_index("prompt_id")
    assert set(rows["scorer"]) == {"reference_match"}
    assert rows["judge_verdict"].tolist() == ["CORRECT", "INCORRECT", "UNPARSEABLE"]
    assert rows["verdict"].tolist() == rows["reference_verdict"].tolist() == ["CORRECT", "INCORRECT", "INCORRECT"]
    meta = result.asset_materializations_for_node("judgments")[0].metadata
    assert meta["scorers"].value == {"medqa": "reference_match"} and meta["unparseable"].value == 0
    assert meta["judge_verdicts"].value["UNPARSEABLE"] == 1
    assert "| medqa | 2 | 100.0% | 1.00 | 1 / 1 | 1 / 1 |" in meta["judge_vs_reference_match"].value
    # the analysis reads `verdict`: the rambling answer the judge could not grade is scored, and INCORRECT
    from warmth_assets.lib.analysis import observations

    observed = observations(rows.reset_index().assign(model="m", checkpoint="original"), {}, 2)
    assert observed.set_index("prompt_id").loc["p3", "exclusion"] == ""
    # a served judge gives no label scores: content-free calibration (demo.toml) is not applied, keys unchanged
    assert meta["choice_calibration"].value == "none"


def test_judge_prompt_version_selects_the_prompt_and_enters_the_request_keys(tmp_path, monkeypatch):
    """[judge] prompt_version is read: another version sends another prompt under other keys; the default is the
    version every judge call so far was cached under (its keys are pinned in tests/lib/test_llm_requests.py)."""
    import dataclasses

    from tests.study_configs import study_settings
    from warmth_assets.lib import judging as judge_lib

    v2 = dataclasses.replace(judge_lib.JUDGE_PROMPTS["judge-v1"], system="You grade answers. Reply with one word.")
    monkeypatch.setitem(judge_lib.JUDGE_PROMPTS, "judge-v2", v2)
    rows = pd.DataFrame({"dataset": ["medqa", "triviaqa"], "response": ["Give Aspirin.", "Paris"]})
    refs = [(["Aspirin"], ["Heparin"]), (["Paris"], ["Lyon"])]
    warehouse = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    server = Judge().start()
    try:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="x", warehouse=warehouse)
        for version in ("judge-v1", "judge-v2"):
            settings = study_settings({"judge": {"prompt_version": version}})
            _, verdicts, _, _ = judging._judge(llm, settings, rows, ["Q?", "Capital?"], refs, print,
                                               ("CORRECT", "INCORRECT"))
            assert verdicts == ["CORRECT", "CORRECT"]
    finally:
        server.stop()
    calls = warehouse.query_df("SELECT request_key, template_version, request_json FROM llm_calls")
    by_version = {v: group for v, group in calls.groupby("template_version")}
    assert set(by_version) == {"judge-v1", "judge-v2"} and all(len(g) == 2 for g in by_version.values())
    assert set(by_version["judge-v1"]["request_key"]).isdisjoint(by_version["judge-v2"]["request_key"])
    systems = {v: {json.loads(body)["messages"][0]["content"] for body in g["request_json"]}
               for v, g in by_version.items()}
    assert systems == {"judge-v1": {judge_lib.JUDGE_SYSTEM}, "judge-v2": {v2.system}}
    assert server.total_attempts == 4  # neither version answered from the other's cache
    assert study_settings().judge.prompt_version == judge_lib.JUDGE_PROMPT_VERSION == "judge-v1"


def test_unknown_judge_prompt_version_is_refused_with_the_known_ones():
    import pytest
    from pydantic import ValidationError

    from tests.study_configs import study_settings

    with pytest.raises(ValidationError, match="unknown judge prompt 'judge-v9'; known: judge-v1"):
        study_settings({"judge": {"prompt_version": "judge-v9"}})
