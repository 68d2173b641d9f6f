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
from warmth_assets.lib.agreement import NOT_ESTIMABLE
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


def test_judge_against_reference_match_per_dataset(warmth_home, tmp_path, instance):
    """Judgments with the scorer columns: the sample holds the judge's own verdicts (not the verdict reference match
    gave the analysis), and the agreement of judge and reference match is reported per dataset, a kappa that cannot
    be estimated written as such. Imported rows (the study's outputs) are left out."""
    resources = setup(warmth_home, tmp_path)
    for checkpoint in ("original", "warm-e2"):
        write_partition(warmth_home, "judgments", "m3", checkpoint, pd.DataFrame({
            "prompt_id": [f"p{i}" for i in range(8)], "dataset": ["triviaqa"] * 4 + ["medqa"] * 4,
            "question": ["Q1?"] * 4 + ["M?"] * 4, "item_key": ["Q1?"] * 4 + ["M?"] * 4,
            "response": ["Onion", "Leek", "Allium cepa", "Garlic", "B.", "x", "y", "z"],
            "judge_verdict": ["CORRECT", "INCORRECT", "INCORRECT", "CORRECT"] + ["CORRECT"] * 4,
            "reference_verdict": ["CORRECT", "INCORRECT", "CORRECT", "INCORRECT", "CORRECT", "INCORRECT",
                                  "INCORRECT", "INCORRECT"],
            "scorer": ["reference_match"] * 8, "judge_prompt_version": ["judge-v1"] * 8,
        }).assign(verdict=lambda f: f["reference_verdict"]))
    write_partition(warmth_home, "judgments", "imported", "original", pd.DataFrame({
        "prompt_id": ["s1"], "dataset": ["triviaqa"], "question": ["Q1?"], "item_key": ["Q1?"], "response": ["Leek"],
        "verdict": ["CORRECT"], "judge_prompt_version": ["study"]}))
    with resources["warehouse"].get_connection() as conn:
        files = sorted(str(p) for p in (warmth_home / "tables" / "judgments").glob("**/data.parquet"))
        conn.execute(f"CREATE OR REPLACE VIEW judgments AS SELECT * FROM read_parquet({files}, union_by_name = true)")
    resources["study"] = StudyConfigResource(config_path=str(write_study_config(
        tmp_path, {"judge": {"validation_sample": 40}}, name="all.toml")))
    result = dg.materialize([judge_validation], instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("judge_validation")[0].metadata
    per = meta["reference_match"].value
    # TriviaQA: the 8 new rows (2 checkpoints x 4) and the 12 older ones (m1, m2 x 2 checkpoints x 3: computed
    # from the item); the imported row is not counted
    assert per["triviaqa"]["n"] == 20
    # Worked by hand. Judge x reference: older rows (C,C) (I,I) (I,C) x 4, new rows (C,C) (I,I) (I,C) (C,I) x 2:
    #                 reference C   reference I
    #   judge C            6             2          8
    #   judge I            6             6         12
    #                     12             8         20
    # observed 12/20 = 0.6; chance (8*12 + 12*8) / 20^2 = 0.48; kappa (0.6 - 0.48) / (1 - 0.48) = 3/13 = 0.2308
    assert per["triviaqa"]["agreement"] == pytest.approx(0.6, abs=1e-4)
    assert per["triviaqa"]["kappa"] == pytest.approx(3 / 13, abs=1e-4)
    assert per["triviaqa"]["judge"] == {"CORRECT": 8, "INCORRECT": 12}
    assert per["triviaqa"]["reference_match"] == {"CORRECT": 12, "INCORRECT": 8}
    # MedQA: the judge said CORRECT to all 8, reference match 2 / 6: agreement 25%, kappa not estimable
    assert per["medqa"]["n"] == 8 and per["medqa"]["agreement"] == 0.25 and per["medqa"]["kappa"] == NOT_ESTIMABLE
    assert per["medqa"]["reference_match"] == {"CORRECT": 2, "INCORRECT": 6}
    assert f"| medqa | 8 | 25.0% | {NOT_ESTIMABLE} | 8 / 0 | 2 / 6 |" in meta["reference_match_table"].value
    assert meta["reference_match_n"].value == 28 and meta["scorers"].value["triviaqa"] == "reference_match"
    # the export for annotators carries the judge's verdicts
    sample = pd.read_csv(meta["export"].value)
    new_rows = sample[(sample["model"] == "m3") & sample["prompt_id"].isin(["p2", "p3"])]
    assert len(new_rows) and set(zip(new_rows["prompt_id"], new_rows["verdict"])) <= {("p2", "INCORRECT"),
                                                                                       ("p3", "CORRECT")}
