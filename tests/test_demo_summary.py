"""The demo summary says whether fine-tuning moved the model: paired CI of warm-last - original, changed answers."""

import pandas as pd
from scipy import stats

from resources.warehouse import WarehouseResource
from warmth_assets import demo


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
