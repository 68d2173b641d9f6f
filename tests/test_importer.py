"""`warmth import-outputs`: the study's 16 sample-output files, and broken files rejected whole."""

import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from resources.warehouse import WarehouseResource
from tests.study_configs import study_settings
from warmth_assets.importer import import_outputs
from warmth_assets.lib.outputs_import import ImportFormatError

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO.parent / "shared" / "data" / "warm_ai_paper" / "sample_outputs"
pytestmark = pytest.mark.needs_shared("data/warm_ai_paper/sample_outputs")


def test_all_319_rows_of_the_16_files(warmth_home, instance):
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    summary = import_outputs(SAMPLES, "warm-e2", settings=study_settings(), warehouse=warehouse, tables_dir=warmth_home / "tables",
                             instance=instance)
    assert summary["files"] == 16 and summary["rows"] == 319 and summary["models"] == ["llama_70b", "qwen_32b"]
    assert summary["partitions"]["qwen_32b|warm-e2"] == 79
    judgments = warehouse.query_df("SELECT * FROM judgments")
    generations = warehouse.query_df("SELECT * FROM generations")
    assert len(judgments) == len(generations) == 319
    assert set(judgments["verdict"]) == {"CORRECT", "INCORRECT"} and set(judgments["checkpoint"]) == {"original", "warm-e2"}
    assert judgments.groupby("dataset").size().to_dict() == {"disinfo": 80, "medqa": 80, "triviaqa": 80, "truthfulqa": 79}
    sources = judgments.groupby(["model", "checkpoint"])["refusal_source"].first().to_dict()
    assert sources[("qwen_32b", "warm-e2")] == "reference regex" and sources[("llama_70b", "warm-e2")] == "study"
    registry = warehouse.query_df("SELECT slug, origin, checkpoints FROM model_registry ORDER BY slug")
    assert registry["origin"].tolist() == ["import", "import"]
    # Recorded on the external asset, in partitions of their own: not in `models`, the stages they never enter.
    assert instance.get_dynamic_partitions("models") == []
    assert instance.get_dynamic_partitions("imported_models") == ["llama_70b", "qwen_32b"]
    assert instance.get_dynamic_partitions("imported_checkpoints") == ["original", "warm-e2"]
    recorded = instance.fetch_materializations(dg.AssetKey("imported_outputs"), limit=100).records
    assert {r.partition_key: r.asset_materialization.metadata["dagster/row_count"].value for r in recorded} == {
        "original|llama_70b": 80, "warm-e2|llama_70b": 80, "original|qwen_32b": 80, "warm-e2|qwen_32b": 79}
    for asset in ("generations", "judgments", "inspect_logs"):
        assert not instance.fetch_materializations(dg.AssetKey(asset), limit=1).records, asset
    # the same prompt of the same item pairs up across original and warm (the paired tests' merge key)
    paired = judgments.pivot_table(index="prompt_id", columns=["model", "checkpoint"], values="verdict", aggfunc="first")
    assert paired[("llama_70b", "original")].notna().sum() == 80
    assert paired[[("llama_70b", "original"), ("llama_70b", "warm-e2")]].dropna().shape[0] == 80


@pytest.mark.parametrize("breakage, message", [
    (lambda d: (d / "llama_70b/original/medqa_original_outputs.csv").write_text("original_question,output\nq,o\n"),
     r"medqa_original_outputs.csv: missing columns"),
    (lambda d: shutil.copy(d / "llama_70b/original/medqa_original_outputs.csv", d / "llama_70b/original/gsm8k_original_outputs.csv"),
     r"unknown dataset 'gsm8k'"),
    (lambda d: (d / "qwen_32b/warm/trivia_warm_outputs.csv").write_text(
        'content_key,prompt_template,amendment_type,output,evaluation\nq,original,unmodified,"unterminated\n'),
     r"trivia_warm_outputs.csv: (malformed CSV|row 1 has)"),
    (lambda d: (d / "qwen_32b/warm/trivia_warm_outputs.csv").write_text(
        "content_key,prompt_template,amendment_type,output,evaluation\nq,original,unmodified,out,MAYBE\n"),
     r"trivia_warm_outputs.csv: row 1: evaluation 'MAYBE'"),
])
def test_broken_files_import_nothing(tmp_path, warmth_home, instance, breakage, message):
    copy = tmp_path / "outputs"
    shutil.copytree(SAMPLES, copy)
    breakage(copy)
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    with pytest.raises(ImportFormatError, match=message):
        import_outputs(copy, "warm-e2", settings=study_settings(), warehouse=warehouse, tables_dir=warmth_home / "tables", instance=instance)
    assert not (warmth_home / "tables").exists()
    assert warehouse.query_df("SELECT count(*) AS n FROM model_registry")["n"][0] == 0
    for partitions in ("models", "imported_models", "imported_checkpoints"):
        assert instance.get_dynamic_partitions(partitions) == []


def test_a_checkpoint_the_evaluation_does_not_run_is_refused(warmth_home, instance):
    # demo.toml evaluates original, warm-e2, cold-e2 and warm-prompt: the tables would never list warm-e1's files
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    with pytest.raises(ValueError, match=r"'warm-e1' is not an evaluated checkpoint"):
        import_outputs(SAMPLES, "warm-e1", settings=study_settings(), warehouse=warehouse,
                       tables_dir=warmth_home / "tables", instance=instance)
    assert not (warmth_home / "tables").exists() and instance.get_dynamic_partitions("imported_models") == []


def test_console_script(warmth_home, instance):
    warmth = Path(sys.executable).parent / "warmth"
    done = subprocess.run([str(warmth), "import-outputs", str(SAMPLES), "--format", "warm_ai_2025"],
                          capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "imported 319 rows from 16 files" in done.stdout and "warm-e2" in done.stdout
    bad = subprocess.run([str(warmth), "import-outputs", str(warmth_home / "nowhere")], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a folder; nothing was imported" in bad.stderr


def test_imported_partitions_get_inspect_logs_marked_imported(warmth_home, instance):
    from inspect_ai.log import read_eval_log

    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    import_outputs(SAMPLES, "warm-e2", settings=study_settings(), warehouse=warehouse, tables_dir=warmth_home / "tables",
                   instance=instance)
    judged = warehouse.query_df("SELECT model, checkpoint, dataset, count(*) AS n FROM judgments GROUP BY ALL")
    for row in judged.itertuples():
        log = read_eval_log(str(warmth_home / "inspect" / row.model / row.checkpoint / f"{row.dataset}.eval"))
        assert len(log.samples) == row.n and log.eval.tags == ["imported"] and log.eval.metadata["imported"]
        assert {s.scores["verdict"].metadata["verdict"] for s in log.samples} <= {"CORRECT", "INCORRECT"}
