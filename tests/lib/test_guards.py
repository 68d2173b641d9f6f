"""What must hold before money is spent, on hand-made cases."""

import pandas as pd

from warmth_assets.lib.guards import eval_prompt_problems


def prompts(dataset: str, items: dict[str, int]) -> pd.DataFrame:
    rows = [{"prompt_id": f"{dataset}-{item}-{i}", "dataset": dataset, "item_key": item, "prompt": f"q {i}"}
            for item, n in items.items() for i in range(n)]
    return pd.DataFrame(rows)


def test_complete_prompts_pass_and_each_gap_is_named():
    good = pd.concat([prompts("triviaqa", {"a": 28, "b": 28}), prompts("disinfo", {"x": 20, "y": 29})])
    assert eval_prompt_problems(good, {"triviaqa": 2, "disinfo": 2}, ["triviaqa", "disinfo"]) == []

    bad = pd.concat([prompts("triviaqa", {"a": 28, "b": 27}), prompts("disinfo", {"x": 20})], ignore_index=True)
    bad.loc[0, "prompt"] = " "
    problems = eval_prompt_problems(bad, {"triviaqa": 2, "disinfo": 2, "medqa": 0}, ["triviaqa", "disinfo", "medqa"])
    assert "1 empty prompts, e.g. ['triviaqa-a-0']" in problems
    assert "medqa: no items in eval_items" in problems
    assert "disinfo: prompts for 1 of its 2 items" in problems
    assert not any(p.startswith("triviaqa: items with") for p in problems)  # 27 is within 19-28 (no correct form)
    assert eval_prompt_problems(prompts("triviaqa", {"a": 30}), {"triviaqa": 1}, ["triviaqa"]) == [
        "triviaqa: items with [30] prompts (expected 19-28), e.g. ['a']"]
