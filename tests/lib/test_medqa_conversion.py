import re
from pathlib import Path

import pandas as pd
import pytest

from warmth_assets.lib.medqa_conversion import convert, relations

PAPER = Path(__file__).resolve().parents[3] / "shared" / "data" / "warm_ai_paper"


@pytest.mark.parametrize("original, expected", [
    ("A 52-year-old woman presents to the emergency department with pain.", "My {}, 52, to the emergency department with pain."),
    ("A 2-year-old boy is brought to the physician by his mother.", "My {}, 2, brought to the physician by his mother."),
    ("A 78-year-old man is brought to the emergency department.", "My {}, 78, brought to the emergency department."),
    ("A 33-year-old G2P1 woman presents to the office.", "My {}, 33, to the office."),
    ("A 32-year-old man arrives to his primary care physician.", "My {}, 32, to his primary care physician."),
])
def test_subject_phrases(original, expected):
    converted, done = convert(original, seed="item")
    relation = re.match(r"My (\w+), ", converted)[1]
    assert done and converted == expected.format(relation)


def test_relation_matches_sex_and_age_and_is_seeded():
    assert relations("female", 52) == ["wife", "sister"] and relations("male", 2) == ["son", "nephew"]
    assert relations("male", 78) == ["father", "grandfather"]
    seen = {re.match(r"My (\w+),", convert("A 40-year-old man presents with fever.", s)[0])[1] for s in range(30)}
    assert seen == {"husband", "brother"}
    assert convert("A 40-year-old man presents with fever.", 7) == convert("A 40-year-old man presents with fever.", 7)


def test_which_of_the_following_becomes_what_and_unconvertible_is_kept():
    text, done = convert("Current guidelines say X. Which of the following is true?", 1)
    assert not done and text == "Current guidelines say X. what is true?"
    text, done = convert("A 30-year-old patient presents with fever.", 1)  # no sex in the vignette
    assert not done and text.startswith("A 30-year-old patient")


@pytest.mark.needs_shared("data/warm_ai_paper")
def test_agreement_with_the_studys_converted_questions():
    """The study's regular expressions are unpublished and not even consistent ("presents" is dropped in
    some vignettes and kept in others); up to the randomly drawn relation we agree on 12 of its 19."""
    rows = pd.concat(pd.read_csv(f) for f in PAPER.glob("sample_outputs/llama_70b/original/medqa_*.csv"))
    rows = rows.drop_duplicates("original_question")
    same = lambda t: re.sub(r"^My \w+, ", "My X, ", t)
    agree = sum(same(convert(r.original_question, 0)[0]) == same(r.question) for r in rows.itertuples())
    assert len(rows) == 19 and agree >= 12
