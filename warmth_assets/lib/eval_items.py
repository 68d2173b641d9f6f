"""The study's evaluation items (docs/study.md §5), from a local data folder (layout of shared/data) or the HF hub.

Every item: dataset, item_key, question, correct_answer, incorrect_answer (may be empty: TriviaQA
has none here and gets a generated one), incorrect_source, and the dataset's own fields as JSON.
"""

from __future__ import annotations

import ast
import json
import random
import re
from pathlib import Path

import pandas as pd

ITEM_COLUMNS = ["dataset", "item_key", "question", "correct_answer", "incorrect_answer", "incorrect_source", "fields"]
PIVOTAL = re.compile(r"<pivotal>(?P<a>[^/<]*)/(?P<b>[^<]*)</pivotal>")


class EvalDataError(ValueError):
    pass


def _need(path: Path, dataset: str) -> Path:
    if not path.is_file():
        raise EvalDataError(
            f"{dataset}: {path} not found; point WARMTH_DATA_DIR (or [data] dir) at a folder laid out like "
            "shared/data (see shared/data/SOURCES.md), or leave both empty to read from the Hugging Face hub"
        )
    return path


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    frame["fields"] = frame["fields"].map(lambda f: json.dumps(f, ensure_ascii=False, default=str))
    return frame[ITEM_COLUMNS]


def truthfulqa_items(frame: pd.DataFrame, rule: str = "first") -> pd.DataFrame:
    rows = []
    for r in frame.itertuples(index=False):
        record = r._asdict()
        incorrect = [a.strip() for a in str(record["Incorrect_Answers"]).split(";") if a.strip()]
        correct = [a.strip() for a in str(record["Correct_Answers"]).split(";") if a.strip()]
        if not incorrect:
            raise EvalDataError(f"truthfulqa: question {record['Question']!r} has no Incorrect Answers")
        chosen = incorrect[0] if rule == "first" else random.Random(f"tqa:{record['Question']}").choice(incorrect)
        rows.append({"dataset": "truthfulqa", "item_key": record["Question"], "question": record["Question"],
                     "correct_answer": record["Best_Answer"], "incorrect_answer": chosen,
                     "incorrect_source": f"truthfulqa:{rule}",
                     "fields": {"category": record["Category"], "type": record["Type"], "correct_answers": correct,
                                "incorrect_answers": incorrect}})
    return _frame(rows)


def load_truthfulqa(data_dir: Path, rule: str = "first") -> pd.DataFrame:
    frame = pd.read_csv(_need(data_dir / "truthfulqa" / "TruthfulQA.csv", "truthfulqa"), encoding="utf-8-sig")
    return truthfulqa_items(frame.rename(columns=lambda c: c.replace(" ", "_")), rule)


def triviaqa_question(context: str) -> str:
    return re.sub(r"\nAnswer:\s*$", "", re.sub(r"^Question:\s*", "", context)).strip()


def load_triviaqa(data_dir: Path) -> pd.DataFrame:
    # split("\n"), not splitlines(): some questions hold U+0085, which splitlines() takes for a line end.
    rows = []
    path = _need(data_dir / "triviaqa" / "triviaqa_sm_sub.jsonl", "triviaqa")
    for line_no, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            question = triviaqa_question(record["context"])
            rows.append({"dataset": "triviaqa", "item_key": question, "question": question,
                         "correct_answer": record["answer"], "incorrect_answer": "", "incorrect_source": "",
                         "fields": {"aliases": record.get("aliases", [])}})
        except (KeyError, json.JSONDecodeError) as exc:
            raise EvalDataError(f"{path}: line {line_no} is not a TriviaQA record ({exc})") from None
    return _frame(rows)


def medqa_items(records: list[dict], seed: int) -> pd.DataFrame:
    rows = []
    for record in records:
        options = record["options"] if isinstance(record["options"], dict) else ast.literal_eval(record["options"])
        right = record["answer_idx"]
        wrong_keys = sorted(k for k in options if k != right)
        wrong = options[random.Random(f"medqa-wrong:{seed}:{record['question']}").choice(wrong_keys)]
        rows.append({"dataset": "medqa", "item_key": record["question"], "question": record["question"],
                     "correct_answer": record["answer"], "incorrect_answer": wrong, "incorrect_source": "medqa:seeded",
                     "fields": {"options": options, "answer_idx": right, "meta_info": record.get("meta_info", "")}})
    return _frame(rows)


def load_medqa(data_dir: Path, seed: int) -> pd.DataFrame:
    path = _need(data_dir / "medqa" / "test_4options_phrases_no_exclude.jsonl", "medqa")
    return medqa_items([json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line.strip()], seed)


def disinfo_key(question: str, truth: str, false: str, proposition: str) -> str:
    """The study tells its 125 items apart by all their fields (only 122 questions are distinct)."""
    return "||".join((question, truth, false, proposition))


def disinfo_items(frame: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for record in frame.to_dict("records"):
        match = PIVOTAL.search(record["proposition"])
        if not match:
            raise EvalDataError(f"disinfo: task {record.get('task_id')}: proposition has no <pivotal>a/b</pivotal>")
        # The false proposition is the ground truth with its pivotal phrase swapped for the other one
        # (as the study built it: MASK's ground truth sometimes differs from the plain substitution).
        truth_text = record["ground_truth"]
        present = [v for v in (match["a"], match["b"]) if v and v in truth_text]
        if not present:
            raise EvalDataError(f"disinfo: task {record.get('task_id')}: ground truth holds neither pivotal phrase")
        said = max(present, key=len)
        false = truth_text.replace(said, match["b"] if said == match["a"] else match["a"], 1)
        question = record["belief_elicit_1"].split(" After thinking through your reasoning")[0].strip()
        rows.append({"dataset": "disinfo", "item_key": disinfo_key(question, truth_text, false, record["proposition"]),
                     "question": question,
                     "correct_answer": record["ground_truth"], "incorrect_answer": false,
                     "incorrect_source": "mask:proposition",
                     "fields": {"proposition": record["proposition"], "belief_elicit_1": record["belief_elicit_1"],
                                "task_id": record.get("task_id", "")}})
    return _frame(rows)


def load_disinfo(data_dir: Path) -> pd.DataFrame:
    return disinfo_items(pd.read_csv(_need(data_dir / "mask" / "disinformation.csv", "disinfo")))


def load_sharma_answers(path: Path) -> pd.DataFrame:
    """Items of the sycophancy-eval `answer.jsonl` (Sharma et al. 2023), when a user supplies the file."""
    rows, seen = [], set()
    for line_no, line in enumerate(_need(path, "answer.jsonl").read_text(encoding="utf-8").split("\n"), 1):
        if not line.strip():
            continue
        try:
            base = json.loads(line)["base"]
        except (KeyError, json.JSONDecodeError) as exc:
            raise EvalDataError(f"{path}: line {line_no}: not an answer.jsonl record ({exc})") from None
        dataset = {"trivia_qa": "triviaqa", "truthful_qa": "truthfulqa"}.get(base.get("dataset"), base.get("dataset"))
        key = (dataset, base["question"])
        if key in seen:
            continue
        seen.add(key)
        rows.append({"dataset": dataset, "item_key": base["question"], "question": base["question"],
                     "correct_answer": base["correct_answer"], "incorrect_answer": base["incorrect_answer"],
                     "incorrect_source": "sharma:answer.jsonl",
                     "fields": {k: v for k, v in base.items() if k not in ("question", "correct_answer", "incorrect_answer")}})
    return _frame(rows)


def load_from_hub(dataset: str, hub_id: str, seed: int) -> pd.DataFrame:  # pragma: no cover - needs the hub
    """The same items from the Hugging Face hub (`pip install datasets`); never used offline."""
    from datasets import load_dataset

    if dataset == "truthfulqa":
        frame = load_dataset(hub_id, "generation", split="validation").to_pandas()
        frame = frame.rename(columns={"question": "Question", "best_answer": "Best_Answer",
                                      "correct_answers": "Correct_Answers", "incorrect_answers": "Incorrect_Answers",
                                      "category": "Category", "type": "Type"})
        # The hub stores the answer lists as lists; the CSV as "; "-joined text.
        for column in ("Correct_Answers", "Incorrect_Answers"):
            frame[column] = frame[column].map("; ".join)
        return truthfulqa_items(frame)
    if dataset == "triviaqa":
        frame = load_dataset(hub_id, "rc.nocontext", split="validation").to_pandas()
        return _frame([{"dataset": "triviaqa", "item_key": r["question"], "question": r["question"],
                        "correct_answer": r["answer"]["value"], "incorrect_answer": "", "incorrect_source": "",
                        "fields": {"aliases": list(r["answer"]["aliases"])}} for r in frame.to_dict("records")])
    if dataset == "medqa":
        return medqa_items(load_dataset(hub_id, split="test").to_pandas().to_dict("records"), seed)
    if dataset == "disinfo":
        return disinfo_items(load_dataset(hub_id, "disinformation", split="test").to_pandas())
    raise EvalDataError(f"no hub loader for {dataset!r}")


def sample_items(items: pd.DataFrame, size: int, seed: int) -> pd.DataFrame:
    """`size` items drawn with the seed (all of them when size >= the set), in a stable order."""
    items = items.drop_duplicates("item_key").sort_values("item_key").reset_index(drop=True)
    if size >= len(items):
        return items
    dataset = items["dataset"].iloc[0]
    return items.sample(n=size, random_state=random.Random(f"{seed}:{dataset}").randrange(2**32)).sort_values(
        "item_key").reset_index(drop=True)
