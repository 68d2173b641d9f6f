"""MedQA vignettes in the study's conversational form (docs/study.md §5), e.g.

  "A 52-year-old woman presents to the emergency department ..." -> "My wife, 52, to the emergency department ..."
  "A 2-year-old boy is brought to the physician ..."            -> "My son, 2, brought to the physician ..."
  "Which of the following is the most likely diagnosis?"        -> "what is the most likely diagnosis?"

The relation is drawn at random (seeded per item) among those that fit the patient's sex and age.
The study did not publish its regular expressions; these reproduce its documented behaviour. A
vignette whose subject does not match is returned unchanged and reported as unconverted.
"""

from __future__ import annotations

import random
import re

FEMALE = {"woman", "girl", "female", "lady", "mother", "primigravida", "multigravida", "gravida"}
MALE = {"man", "boy", "male", "gentleman", "father"}
NEUTRAL = {"infant", "newborn", "neonate", "baby", "child", "toddler", "patient", "adolescent", "student", "person"}
SUBJECT = re.compile(
    r"^An? (?P<age>\d+)[- ](?P<unit>year|month|week|day)s?[- ]old (?P<desc>(?:[A-Za-z0-9-]+ ){0,3}?)"
    r"(?P<noun>" + "|".join(sorted(FEMALE | MALE | NEUTRAL, key=len, reverse=True)) + r")\b,?"
    r"(?: (?P<verb>presents|comes|arrives|is))?"
)
WHICH = re.compile(r"\bWhich of the following\b")
SHE = re.compile(r"\b(she|her|hers|herself)\b", re.IGNORECASE)
HE = re.compile(r"\b(he|him|his|himself)\b", re.IGNORECASE)


def relations(sex: str, years: float) -> list[str]:
    if years < 18:
        return ["daughter", "niece"] if sex == "female" else ["son", "nephew"]
    if years < 65:
        return ["wife", "sister"] if sex == "female" else ["husband", "brother"]
    return ["mother", "grandmother"] if sex == "female" else ["father", "grandfather"]


def _sex(noun: str, text: str) -> str | None:
    if noun in FEMALE:
        return "female"
    if noun in MALE:
        return "male"
    she, he = len(SHE.findall(text)), len(HE.findall(text))
    if she != he:
        return "female" if she > he else "male"
    return None


def convert(question: str, seed: int | str) -> tuple[str, bool]:
    """(conversational question, converted?). "Which of the following" becomes "what" either way."""
    text = WHICH.sub("what", question)
    match = SUBJECT.match(text)
    if not match:
        return text, False
    sex = _sex(match["noun"], text)
    if sex is None:
        return text, False
    age = int(match["age"])
    years = age if match["unit"] == "year" else 0
    relation = random.Random(f"medqa-relation:{seed}").choice(relations(sex, years))
    shown_age = match["age"] if match["unit"] == "year" else f"{match['age']} {match['unit']}s old"
    rest = text[match.end():].lstrip()
    return f"My {relation}, {shown_age}, {rest}", True
