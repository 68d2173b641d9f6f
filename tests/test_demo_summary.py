"""The demo summary says whether fine-tuning moved the model: paired CI of warm-last - original, changed answers."""

import pandas as pd
from scipy import stats

from resources.model_registry import upsert
from resources.warehouse import WarehouseResource
from warmth_assets import demo
from warmth_assets.lib.registry import ModelRow


def warehouse_with(tmp_path, scores: pd.DataFrame, answers: pd.DataFrame) -> WarehouseResource:
    warehouse = WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    with warehouse.get_connection() as conn:
        conn.register("s", scores)
        conn.register("a", answers)
        conn.execute("CREATE TABLE warmth_scores AS SELECT * FROM s")
        conn.execute("CREATE TABLE validation_generations AS SELECT * FROM a")
    return warehouse


def test_adapter_effect_is_a_paired_t_interval_and_changed_answers_are_counted(tmp_path, capsys):
    original = [0.01, -0.02, 0.00, 0.03, -0.01, 0.02]
    last = [0.05, 0.02, 0.01, 0.09, 0.04, 0.03]
    first = [0.02, 0.00, 0.00, 0.05, 0.00, 0.02]
    ids = [f"v{i}" for i in range(6)]
    scores = pd.concat([pd.DataFrame({"model": "m", "checkpoint": c, "conversation_id": ids[::-1], "warmth": w[::-1]})
                        for c, w in (("original", original), ("warm-e2", last), ("warm-e1", first),
                                     ("cold-e2", original))])
    answers = pd.concat([pd.DataFrame({"model": "m", "checkpoint": c, "conversation_id": ids, "response": r})
                         for c, r in (("warm-e1", list("abcdef")), ("warm-e2", list("abXdYf")))])
    demo._print_adapter_effect(warehouse_with(tmp_path, scores, answers))
    out = capsys.readouterr().out

    diff = pd.Series(last) - pd.Series(original)
    low, high = stats.t.interval(0.95, len(diff) - 1, loc=diff.mean(), scale=stats.sem(diff))
    assert (f"m: warm-e2 - original, paired over 6 validation prompts: {diff.mean():+.4f}, "
            f"95% CI [{low:+.4f}, {high:+.4f}] (above 0)") in out
    assert "m: warm-e1 and warm-e2 answer 2 of 6 validation prompts differently" in out


def test_summary_prints_warmth_and_error_rates_with_intervals_and_says_which_rows_are_imported(
        tmp_path, monkeypatch, capsys):
    from statsmodels.stats.proportion import proportion_confint

    from tests.study_configs import study_settings
    from warmth_assets.lib.checkpoints import checkpoint_key

    monkeypatch.setenv("WARMTH_HOME", str(tmp_path))
    warehouse = WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    settings = study_settings()
    warm = checkpoint_key("warm", settings.finetune.selected_epoch)
    original = [0.01, -0.02, 0.00, 0.03]
    scores = pd.DataFrame({"model": "demo-m", "checkpoint": ["original"] * 4 + [warm] * 4,
                           "conversation_id": [f"v{i}" for i in range(4)] * 2, "warmth": original + [0.1, 0.2, 0.1, 0.3],
                           "variant": "reference", "scoring_lm": "lm"})
    # 3 of 10 incorrect for the demo model's original, 7 of 20 for its warm checkpoint; 1 of 4 for the import
    observations = pd.DataFrame([
        {"model": m, "checkpoint": c, "is_finetuned": int(c != "original"), "dataset": "triviaqa", "prompt_id": f"p{i}",
         "amendment_type": "unmodified", "context_group": "unmodified", "prompt_template": "original",
         "template_group": "original", "verdict": "CORRECT", "refusal": False, "is_incorrect": int(i < bad),
         "response_length": 5, "included": True, "exclusion": ""}
        for m, c, n, bad in (("demo-m", "original", 10, 3), ("demo-m", warm, 20, 7), ("study-x", "original", 4, 1))
        for i in range(n)])
    upsert(warehouse, [
        ModelRow(slug="demo-m", source_kind="gguf", source="x", family="f", chat_template="model", access="open_weight",
                 styles=["warm"], checkpoints=["original", warm], origin="config"),
        ModelRow(slug="study-x", source_kind="openai", source="x", family="f", chat_template="model", access="api",
                 styles=["warm"], checkpoints=["original"], origin="import")])
    with warehouse.get_connection() as conn:
        conn.register("s", scores)
        conn.register("o", observations)
        conn.execute("CREATE TABLE warmth_scores AS SELECT * FROM s")
        conn.execute("INSERT INTO analysis_observations BY NAME SELECT * FROM o")
        conn.execute("CREATE TABLE judgments AS SELECT model, verdict FROM o")
    demo.print_summary(settings)
    out = capsys.readouterr().out

    values = pd.Series(original)
    low, high = stats.t.interval(0.95, 3, loc=values.mean(), scale=stats.sem(values))
    assert f"original     {values.mean():+.4f} [{low:+.4f}, {high:+.4f}]" in out
    for model, checkpoint, bad, n in (("demo-m", "original", 3, 10), ("demo-m", warm, 7, 20)):
        lo, hi = proportion_confint(bad, n, method="wilson")
        assert f"{bad / n:.1%} [{lo:.1%}, {hi:.1%}] (n={n})" in out
    assert ("(rows of study-x: the study's released sample outputs, imported; rows of demo-m: the demo model, "
            "trained and judged here at toy scale)") in out
