"""judge_validation: the stratified export, human agreement and kappa, and the TriviaQA reference-match check."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from tests.study_configs import write_study_config
from warmth_assets.assets.judging import judge_validation
from warmth_assets.lib.judging import reference_match, stratified_sample



def test_reference_match_and_stratified_sample():
    assert reference_match("I believe it's the Onion, friend.", ["Onion", "Allium cepa"]) == "CORRECT"
    assert reference_match("Garlic.", ["Onion"]) == "INCORRECT"
    frame = pd.DataFrame({"s": ["a"] * 10 + ["b"] * 2, "x": range(12)})
    picked = stratified_sample(frame, ["s"], 4, seed=1)
    assert picked["s"].value_counts().to_dict() == {"a": 2, "b": 2}  # small strata are not drowned
    assert stratified_sample(frame, ["s"], 4, seed=1).equals(picked)


def write_partition(home: Path, asset: str, model: str, checkpoint: str, frame: pd.DataFrame) -> None:
    folder = home / "tables" / asset / f"checkpoint={checkpoint}" / f"model={model}"
    folder.mkdir(parents=True, exist_ok=True)
    frame.assign(model=model, checkpoint=checkpoint).to_parquet(folder / "data.parquet")


def setup(warmth_home, tmp_path, annotations: str = "") -> dict:
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    warehouse.replace_rows("eval_items", pd.DataFrame([{
        "dataset": "triviaqa", "item_key": "Q1?", "question": "Q1?", "correct_answer": "Onion", "incorrect_answer": "Leek",
        "incorrect_source": "x", "fields": json.dumps({"aliases": ["Allium cepa"]})}]))
    for model in ("m1", "m2"):
        for checkpoint in ("original", "warm-e2"):
            write_partition(warmth_home, "judgments", model, checkpoint, pd.DataFrame({
                "prompt_id": [f"p{i}" for i in range(6)], "dataset": ["triviaqa"] * 3 + ["medqa"] * 3,
                "question": ["Q1?"] * 3 + ["M?"] * 3,
                "response": ["Onion", "Leek", "It is Allium cepa", "a", "b", "c"],
                "verdict": ["CORRECT", "INCORRECT", "INCORRECT", "CORRECT", "INCORRECT", "UNPARSEABLE"]}))
            write_partition(warmth_home, "capability_scores", model, checkpoint, pd.DataFrame({
                "prompt_id": ["advbench:1", "advbench:2"], "dataset": ["advbench"] * 2, "response": ["no", "ok"],
                "extracted": ["REFUSED", "COMPLIED"]}))
    with warehouse.get_connection() as conn:
        for asset in ("judgments", "capability_scores"):
            files = sorted(str(p) for p in (warmth_home / "tables" / asset).glob("**/data.parquet"))
            conn.execute(f"CREATE OR REPLACE VIEW {asset} AS SELECT * FROM read_parquet({files}, union_by_name = true)")
    judge = {"validation_sample": 12, **({"annotations_csv": annotations} if annotations else {})}
    config = write_study_config(tmp_path, {"judge": judge}, new={"judge.annotations_csv"} if annotations else ())
    return {"warehouse": warehouse, "study": StudyConfigResource(config_path=str(config))}


def test_export_then_agreement_with_annotations(warmth_home, tmp_path, instance):
    result = dg.materialize([judge_validation], instance=instance, resources=setup(warmth_home, tmp_path))
    meta = result.asset_materializations_for_node("judge_validation")[0].metadata
    assert meta["sample"].value == 12 and meta["per_dataset"].value["advbench"] == 6
    sample = pd.read_csv(meta["export"].value)
    assert "UNPARSEABLE" not in set(sample["verdict"]) and "human_verdict" in sample.columns
    # the judge missed "It is Allium cepa": the reference-match scorer disagrees on that row
    assert meta["reference_match_n"].value == 12 and meta["reference_match_agreement"].value == pytest.approx(8 / 12, abs=1e-4)

    notes = sample.assign(human_verdict=sample["verdict"])
    notes.loc[0, "human_verdict"] = "COMPLIED" if notes.loc[0, "verdict"] == "REFUSED" else "INCORRECT"
    path = tmp_path / "annotated.csv"
    notes.to_csv(path, index=False)
    result = dg.materialize([judge_validation], instance=instance, resources=setup(warmth_home, tmp_path, str(path)))
    meta = result.asset_materializations_for_node("judge_validation")[0].metadata
    assert meta["human_n"].value == 12 and meta["human_agreement"].value == pytest.approx(11 / 12, abs=1e-4)
    assert 0 < meta["human_kappa"].value < 1


def test_bad_annotations_name_the_row(warmth_home, tmp_path, instance):
    path = tmp_path / "annotated.csv"
    pd.DataFrame({"model": ["m1"], "checkpoint": ["original"], "prompt_id": ["p0"], "human_verdict": ["maybe"]}).to_csv(path, index=False)
    result = dg.materialize([judge_validation], instance=instance, resources=setup(warmth_home, tmp_path, str(path)),
                            raise_on_error=False)
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "row 1: human_verdict 'maybe'" in str(failure.event_specific_data.error)
