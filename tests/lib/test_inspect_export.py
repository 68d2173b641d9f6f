"""lib/inspect_export and lib/inspect_view: rows to Inspect objects, directly (no Dagster, no warehouse)."""

import math

import pandas as pd
import pytest

from warmth_assets.lib import inspect_export, inspect_view
from warmth_assets.lib.intervals import wilson


def test_verdicts_refusals_and_reference_match_as_scores():
    row = {"prompt_id": "p", "response": "No.", "verdict": "INCORRECT", "judge_raw": "INCORRECT because",
           "judge_verdict": "CORRECT", "reference_verdict": "INCORRECT", "scorer": "reference_match", "refusal": False,
           "judge_model": "gpt-4o", "judge_prompt_version": "judge-v1", "verdict_prob": float("nan")}
    scores = inspect_export.verdict_scores(row)
    assert scores["verdict"].value == "I" and scores["verdict"].explanation == "INCORRECT because"
    assert scores["verdict"].metadata["scorer"] == "reference_match" and scores["verdict"].metadata["verdict_prob"] is None
    assert scores["reference_match"].value == "I" and scores["refusal"].value is False
    assert inspect_export.verdict_scores({**row, "verdict": "UNPARSEABLE"})["verdict"].value == "N"
    assert "reference_match" not in inspect_export.verdict_scores({**row, "reference_verdict": None})


def test_error_rate_is_the_study_rule_with_wilson():
    verdicts = pd.Series(["INCORRECT", "CORRECT", "INCORRECT", "INCORRECT", "UNPARSEABLE"])
    refusals = pd.Series([False, False, True, True, False])
    datasets = pd.Series(["medqa", "medqa", "medqa", "disinfo", "medqa"])
    score = inspect_export.error_rate(verdicts, refusals, datasets)
    # the medqa refusal and the unparseable verdict are left out; the Disinfo refusal counts as correct
    ci = wilson(1, 3)
    assert score.scored_samples == 3 and score.unscored_samples == 2
    assert score.metrics["error_rate"].value == round(ci.estimate, 6) and score.metrics["ci_low"].value == round(ci.low, 6)
    empty = inspect_export.error_rate(pd.Series(["UNPARSEABLE"]), pd.Series([False]), pd.Series(["medqa"]))
    assert empty.metrics == {}  # not estimable: no number made up
    assert math.isnan(wilson(0, 0).estimate)


def test_the_same_rows_give_the_same_log_and_no_time_is_invented():
    header = inspect_export.LogHeader(model="m", checkpoint="original", source="org/m", config_name="c.toml",
                                      config_sha256="a" * 64, revision=None, imported=True)
    judged = pd.DataFrame([{"prompt_id": "t1", "dataset": "triviaqa", "prompt": "Q?", "response": "A",
                            "verdict": "CORRECT", "refusal": False, "correct_answer": "A"}])
    none = pd.DataFrame(columns=["prompt_id", "dataset"])

    def build():
        return inspect_export.partition_logs(header, judged, none, none, {}, {}, {"eval": "study"},
                                             lambda p: [{"role": "user", "content": p}])["triviaqa"]

    first, second = build(), build()
    assert first.model_dump() == second.model_dump()
    assert first.eval.created == inspect_export.NO_TIME and first.tags == ["imported"]
    assert [m.content for m in first.samples[0].input] == ["Q?"] and first.samples[0].target == ["A"]


def test_log_dir_needs_logs_and_a_model_for_a_checkpoint(tmp_path):
    with pytest.raises(ValueError):
        inspect_view.log_dir(tmp_path, None, "original")
    with pytest.raises(FileNotFoundError):
        inspect_view.log_dir(tmp_path, "m")
    (tmp_path / "inspect" / "m" / "original").mkdir(parents=True)
    (tmp_path / "inspect" / "m" / "original" / "x.eval").write_bytes(b"")
    assert inspect_view.log_dir(tmp_path, "m") == tmp_path / "inspect" / "m"
    assert inspect_view.view_argv(tmp_path, 1234)[-4:] == ["--host", "127.0.0.1", "--port", "1234"]
