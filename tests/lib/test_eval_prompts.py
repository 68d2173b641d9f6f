"""The prompt builder against the study's own prompts: the whole released Disinfo file and every sample."""

import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from warmth_assets.lib.eval_prompts import (
    CONTEXTS,
    STATEMENTS,
    build_prompt,
    draw_statement,
    item_conditions,
    prompt_id,
)

PAPER = Path(__file__).resolve().parents[3] / "shared" / "data" / "warm_ai_paper"
needs_paper = pytest.mark.needs_shared("data/warm_ai_paper")


def identify_statement(prompt: str, context: str) -> str:
    """The pool statement a released prompt used."""
    if context == "unmodified":
        return ""
    found = [s for s in STATEMENTS[context] if prompt.lstrip().startswith(s)]
    if len(found) != 1:
        raise ValueError(f"no unique {context} statement opens: {prompt[:80]!r}")
    return found[0]


@needs_paper
def test_every_prompt_of_the_released_disinfo_file():
    rows = [json.loads(line) for line in (PAPER / "eval_data" / "disinfo.jsonl").read_text().splitlines()]
    assert len(rows) == 2815
    for row in rows:
        statement = identify_statement(row["prompt"], row["amendment_type"])
        truth_first = row["prompt"].find(f"(A) {row['ground_truth']}") >= 0
        built = build_prompt("disinfo", row["prompt_template"], row["amendment_type"], statement,
                             question=row["prompt_disinfo"], correct=row["ground_truth"],
                             incorrect=row["ground_false"], mcq_truth_first=truth_first)
        assert built == row["prompt"], (row["prompt_template"], row["amendment_type"])


SAMPLE_COLUMNS = {
    "trivia": ("triviaqa", "content_key", "correct_answer", "incorrect_answer", "prompt_template"),
    "truthfulqa": ("truthfulqa", "content_key", "correct_answer", "incorrect_answer", "prompt_template"),
    "medqa": ("medqa", "question", "answer", "wrong_answer", "prompt_type"),
    "disinfo": ("disinfo", "prompt_disinfo", "ground_truth", "ground_false", "prompt_template"),
}


@needs_paper
@pytest.mark.parametrize("name", sorted(SAMPLE_COLUMNS))
def test_every_sample_output_prompt(name):
    dataset, question, correct, incorrect, template = SAMPLE_COLUMNS[name]
    checked = 0
    for path in sorted(PAPER.glob(f"sample_outputs/*/*/{name}_*_outputs.csv")):
        frame = pd.read_csv(path, keep_default_na=False)  # "None" is an answer here, not a missing value
        if "prompt" not in frame.columns:  # the Qwen warm files hold only key columns
            continue
        for row in frame.to_dict("records"):
            statement = identify_statement(row["prompt"], row["amendment_type"])
            # One study item has no correct answer; the study's f-string printed it as "None".
            built = build_prompt(dataset, row[template], row["amendment_type"], statement, question=row[question],
                                 correct=row[correct] or "None", incorrect=row[incorrect],
                                 original_question=row.get("original_question"), disinfo_wording="samples")
            assert built == row["prompt"], (path.name, row[template], row["amendment_type"])
            checked += 1
    assert checked >= 57  # three files of 19-20 rows each


def test_28_conditions_per_item_and_disinfo_as_released():
    pairs = item_conditions("triviaqa")
    assert len(pairs) == 28 and len(set(pairs)) == 28
    assert Counter(t for t, _ in pairs) == {"original": 9, "incorrect": 9, "correct": 9, "original_neutral": 1}
    assert {c for _, c in pairs} == set(CONTEXTS) and len(CONTEXTS) == 9
    assert len(item_conditions("disinfo", has_correct=False)) == 20  # as the file: 90 items with 20 rows
    assert len(item_conditions("disinfo", has_correct=True)) == 29  # and 35 with 29


def test_statements_are_seeded_and_shared_across_templates():
    a = draw_statement(2025, "triviaqa", "q1", "emotion:sad")
    assert a == draw_statement(2025, "triviaqa", "q1", "emotion:sad") and a
    assert draw_statement(2025, "triviaqa", "q1", "unmodified") == ""
    drawn = {draw_statement(s, "triviaqa", "q1", "emotion:sad") for s in range(50)}
    assert len(drawn) == 5  # every statement of the pool gets used
    assert prompt_id("triviaqa", "q1", "original", "emotion:sad") != prompt_id("triviaqa", "q1", "incorrect", "emotion:sad")
