"""What must hold before money is spent: training data before training, eval prompts before generation.

Pure functions returning a list of problems (empty: ready). The blocking asset checks report them;
`finetune_runs` refuses to start on them too, whoever requested the run.
"""

import json
from pathlib import Path

import pandas as pd

from warmth_assets.lib.eval_prompts import item_conditions
from warmth_assets.lib.hashing import file_sha256
from warmth_assets.lib.sft_format import SFTFormatError, validate_openai, validate_trl

MAX_LISTED = 10


def sft_problems(style: str, sft: pd.DataFrame, training_ids: set[str]) -> list[str]:
    """The style's SFT rows and their JSONL file agree, every example is valid for TRL and for the
    OpenAI API, no conversation is duplicated, and none of them is outside the training sample."""
    if sft.empty:
        return [f"{style}: no SFT examples"]
    problems = []
    duplicated = sft["conversation_id"][sft["conversation_id"].duplicated()].tolist()
    if duplicated:
        problems.append(f"{style}: duplicated conversations {duplicated[:MAX_LISTED]}")
    foreign = sorted(set(sft["conversation_id"]) - training_ids)
    if foreign:
        problems.append(f"{style}: {len(foreign)} conversations not in training_conversations, e.g. {foreign[:3]}")
    for row in sft.itertuples():
        try:
            example = {"messages": json.loads(row.messages_json)}
            validate_trl(example, f"{style} {row.conversation_id}")
            validate_openai(example, f"{style} {row.conversation_id}")
        except (SFTFormatError, ValueError) as exc:
            problems.append(str(exc))
        if len(problems) >= MAX_LISTED:
            return problems
    path = Path(str(sft["jsonl_path"].iloc[0]))
    if not path.is_file():
        problems.append(f"{style}: {path} is missing: re-materialise sft_datasets[{style}]")
    else:
        if file_sha256(path) != sft["jsonl_sha256"].iloc[0]:
            problems.append(f"{style}: {path} changed since sft_datasets[{style}] wrote it (sha256 differs)")
        elif (lines := path.read_bytes().count(b"\n")) != len(sft):
            problems.append(f"{style}: {path} has {lines} lines for {len(sft)} rows")
    return problems


def eval_prompt_problems(prompts: pd.DataFrame, items: dict[str, int], configured: list[str]) -> list[str]:
    """Every configured data set has items, every item of `eval_items` (count per data set in `items`)
    has its prompts with all of its conditions (28, or Disinfo as released), prompt ids are unique and
    no prompt is empty."""
    if prompts.empty:
        return ["no eval prompts"]
    problems = []
    if not prompts["prompt_id"].is_unique:
        problems.append(f"{int(prompts['prompt_id'].duplicated().sum())} duplicated prompt ids")
    empty = prompts.loc[prompts["prompt"].fillna("").str.strip() == "", "prompt_id"].tolist()
    if empty:
        problems.append(f"{len(empty)} empty prompts, e.g. {empty[:3]}")
    for dataset in configured:
        if not items.get(dataset):
            problems.append(f"{dataset}: no items in eval_items")
    for dataset, count in items.items():
        per_item = prompts[prompts["dataset"] == dataset].groupby("item_key").size()
        if len(per_item) != count:
            problems.append(f"{dataset}: prompts for {len(per_item)} of its {count} items")
        full = len(item_conditions(dataset, True))
        lowest = len(item_conditions(dataset, False))
        wrong = per_item[(per_item < lowest) | (per_item > full)]
        if len(wrong):
            problems.append(f"{dataset}: items with {sorted(set(wrong.tolist()))} prompts (expected {lowest}-{full}), "
                            f"e.g. {wrong.index[:3].tolist()}")
    return problems
