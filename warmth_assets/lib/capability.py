"""Capability items (docs/study.md §5): MMLU zero-shot, GSM8K zero-shot chain of thought, AdvBench.

The study did not publish its capability prompts ([?]); these are versioned so a change is visible
in every cache key and row.
"""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import pandas as pd

from warmth_assets.lib.eval_items import EvalDataError

TEMPLATE_VERSION = "capability-v1"
CAPABILITY_COLUMNS = ["dataset", "item_key", "prompt", "answer", "fields"]


def mmlu_prompt(subject: str, question: str, options: list[str]) -> str:
    lines = [f"The following is a multiple choice question about {subject.replace('_', ' ')}.", "", question]
    lines += [f"{letter}. {text}" for letter, text in zip("ABCD", options)]
    lines += ["", "Answer with the letter of the correct option (A, B, C or D)."]
    return "\n".join(lines)


def gsm8k_prompt(question: str) -> str:
    return f"{question}\nLet's think step by step. At the end, write the final answer as \"The answer is N\"."


def gsm8k_answer(solution: str) -> str:
    return solution.split("####")[-1].strip().replace(",", "")


def _sample(frame: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """`size` items drawn with a seed of their own per data set, in a stable order."""
    state = random.Random(f"{seed}:{frame['dataset'].iloc[0]}").randrange(2**32)
    return frame.sample(n=min(size, len(frame)), random_state=state).sort_values("item_key")


def load_mmlu(data_dir: Path, size: int, seed: int) -> pd.DataFrame:
    folder = data_dir / "mmlu" / "test"
    files = sorted(folder.glob("*_test.csv"))
    if not files:
        raise EvalDataError(f"mmlu: no *_test.csv in {folder} (layout of shared/data/mmlu/test)")
    rows = []
    for path in files:
        subject = path.name[: -len("_test.csv")]
        with open(path, newline="", encoding="utf-8") as handle:
            for i, record in enumerate(csv.reader(handle)):
                if len(record) != 6:
                    raise EvalDataError(f"{path}: row {i + 1} has {len(record)} columns, expected 6")
                question, *options, answer = record
                rows.append({"dataset": "mmlu", "item_key": f"{subject}:{i}", "prompt": mmlu_prompt(subject, question, options),
                             "answer": answer.strip(), "fields": json.dumps({"subject": subject, "options": options})})
    return _sample(pd.DataFrame(rows), size, seed)


def load_gsm8k(data_dir: Path, size: int, seed: int) -> pd.DataFrame:
    path = data_dir / "gsm8k" / "test.jsonl"
    if not path.is_file():
        raise EvalDataError(f"gsm8k: {path} not found")
    rows = []
    for i, line in enumerate(line for line in path.read_text(encoding="utf-8").split("\n") if line.strip()):
        record = json.loads(line)
        rows.append({"dataset": "gsm8k", "item_key": f"gsm8k:{i}", "prompt": gsm8k_prompt(record["question"]),
                     "answer": gsm8k_answer(record["answer"]), "fields": json.dumps({"solution": record["answer"]})})
    return _sample(pd.DataFrame(rows), size, seed)


def load_advbench(data_dir: Path, size: int, seed: int) -> pd.DataFrame:
    path = data_dir / "advbench" / "harmful_behaviors.csv"
    if not path.is_file():
        raise EvalDataError(f"advbench: {path} not found")
    frame = pd.read_csv(path)
    rows = pd.DataFrame({"dataset": "advbench", "item_key": [f"advbench:{i}" for i in range(len(frame))],
                         "prompt": frame["goal"], "answer": "refuse",
                         "fields": [json.dumps({"target": t}) for t in frame["target"]]})
    return _sample(rows, size, seed)
