"""Stale partitions in words: each kind of Dagster root cause, the CLI's lines, the check's Markdown table."""

from warmth_assets.lib.stale_report import (CODE, DATA, DEPENDENCIES, AssetStaleness, Cause, StalePartition,
                                            check_table, describe, kind_counts, report_lines)

P = "original|m1"


def scores(*stale: StalePartition, checked: int = 2, imported: int = 0) -> AssetStaleness:
    return AssetStaleness("warmth_scores", "abc123", True, checked, imported, tuple(stale),
                          reads=("sociot.samples", "project.seed"))


def test_each_kind_of_cause_reads_as_a_reason():
    code = Cause(CODE, "has a new code version", "warmth_scores", P)
    assert describe(code, "warmth_scores", P, ("sociot.samples",)) == (
        "code version changed: a setting, prompt or rule it reads changed (it reads sociot.samples)")
    assert describe(Cause(CODE, "has a new code version", "study_report"), "study_report", None, ("",)).endswith(
        "(it reads the whole configuration)")
    # Dagster's root cause of an updated input is the input itself
    data = Cause(DATA, "has a new data version", "validation_generations", P)
    assert describe(data, "warmth_scores", P) == "input updated: validation_generations [original|m1] has a new data version"
    missing = Cause(DATA, "has a new input", "generations", P, "adapters", P)
    assert describe(missing, "generations", P) == "input updated: has a new input (adapters [original|m1])"
    deps = Cause(DEPENDENCIES, "has a new dependency on eval_items", "judgments", P, "eval_items")
    assert describe(deps, "judgments", P) == "inputs changed: has a new dependency on eval_items (eval_items)"


def test_report_lines_list_each_stale_partition_then_a_summary():
    code = Cause(CODE, "has a new code version", "warmth_scores", P)
    data = Cause(DATA, "has a new data version", "validation_generations", P)
    lines = report_lines([scores(StalePartition(P, (code, data)), imported=1),
                          AssetStaleness("adapters", "x", True, 2)])
    assert lines[0] == "warmth_scores (code version abc123): 1 of 2 materialised partitions stale"
    assert lines[1].startswith(f"  {P}  code version changed: ") and "; input updated: validation_generations" in lines[1]
    assert lines[2].startswith("1 stale partition in 1 asset (4 checked in 2 assets; 1 imported partition not checked)")
    assert report_lines([AssetStaleness("adapters", "x", True, 1)]) == [
        "nothing stale (1 materialised partitions checked in 1 assets)"]
    unpartitioned = AssetStaleness("study_report", "y", False, 1, stale=(StalePartition(None, (
        Cause(CODE, "has a new code version", "study_report"),)),))
    assert report_lines([unpartitioned])[:2] == [
        "study_report (code version y): stale", "  -  code version changed: a setting, prompt or rule it reads changed"]


def test_the_check_table_escapes_partition_keys_and_is_bounded():
    code = (Cause(CODE, "has a new code version", "warmth_scores", P),)
    table = check_table(scores(StalePartition(P, code)))
    assert table.splitlines()[2].startswith("| original\\|m1 | code version changed")
    many = scores(*(StalePartition(f"c{i}|m1", code) for i in range(5)), checked=5)
    rows = check_table(many, rows=3).splitlines()
    assert len(rows) == 2 + 3 + 1 and rows[-1] == "| ... | 2 more: `warmth stale --select warmth_scores` |"
    assert kind_counts(many) == {"code version changed": 5}
    assert check_table(scores()) == "no stale partition"
