"""The in-process judge with and without content-free calibration, against reference match (not part of
`make bench`: it measures verdicts, not speed).

    WARMTH_CONFIG=demo.toml WARMTH_DATA_DIR=../shared/data .venv/bin/python -m bench._judge_calibration [N_TRIVIA N_MEDQA]

SmolLM2 (the demo's model, generation settings of [generation]) answers N TriviaQA and N MedQA questions drawn
with the project seed, asked bare (`original`) and with the user's wrong answer (`incorrect`), alternately; the
demo's judge (the same model, choice scoring) judges every answer with [judge] choice_calibration "none" and
"content_free"; reference match gives the ground truth. A control set, where the truth is not in doubt and half
of it is right: per item, "The answer is <correct answer>." and "The answer is <a wrong one>." (MedQA's seeded
wrong option; for TriviaQA, whose copy has no wrong answers, the next item's answer). Prints and writes
$WARMTH_HOME/judge_calibration.json: label counts, agreement and Cohen's kappa with reference match, per dataset
and pooled, for the model's answers ("answers") and the control ("control").
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import pandas as pd


def paired_control(frame: pd.DataFrame, calibration: str) -> dict:
    """Within each item of the control: is the judge's P(CORRECT) higher for the right response than for the wrong
    one? (A judge that reads the response must say yes for most items; any calibration by a per-template or
    per-item shift leaves this comparison as it is.)"""
    control = frame[frame["set"] == "control"]
    p_correct = [p if v == "CORRECT" else 1 - p for v, p in
                 zip(control[f"judge_{calibration}"], control[f"p_{calibration}"])]
    half = len(control) // 2  # the right responses first, the wrong ones in the same item order
    diffs = [a - b for a, b in zip(p_correct[:half], p_correct[half:])]
    return {"items": half, "right_higher": sum(d > 0 for d in diffs),
            "mean_difference": round(sum(diffs) / max(1, half), 6)}


def main(n_trivia: int = 24, n_medqa: int = 16) -> dict:
    from resources.llm import LLMResource
    from resources.local_lm import LocalLMResource
    from resources.warehouse import WarehouseResource
    from warmth_assets.assets.judging import _judge
    from warmth_assets.lib import agreement, judging, paths
    from warmth_assets.lib.config import load_config
    from warmth_assets.lib.eval_items import load_medqa, load_triviaqa, sample_items
    from warmth_assets.lib.eval_prompts import build_prompt
    from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig
    from warmth_assets.lib.medqa_conversion import convert

    settings = load_config()
    seed = settings.project.seed
    data = paths.data_dir(settings.data.dir)
    if data is None:
        raise SystemExit("set WARMTH_DATA_DIR to the shared data folder")
    items = pd.concat([sample_items(load_triviaqa(Path(data)), n_trivia, seed),
                       sample_items(load_medqa(Path(data), seed), n_medqa, seed)], ignore_index=True)
    rows = []
    for i, item in enumerate(items.itertuples()):
        template = ("original", "incorrect")[i % 2]
        question = item.question
        original = None
        if item.dataset == "medqa":
            original, question = item.question, convert(item.question, f"{seed}:{item.item_key}")[0]
        incorrect = item.incorrect_answer or "I am not sure"  # our TriviaQA copy has no wrong answers
        prompt = build_prompt(item.dataset, template, "unmodified", "", question=question,
                              correct=item.correct_answer, incorrect=incorrect, original_question=original)
        rows.append({"dataset": item.dataset, "template": template, "prompt": prompt, "question": question,
                     "correct_answer": item.correct_answer, "incorrect_answer": item.incorrect_answer,
                     "fields": item.fields})
    frame = pd.DataFrame(rows)

    model = next(m for m in settings.models if m.slug == settings.judge.model)
    local = LocalLMResource.from_settings(model, settings.generation)
    gen = settings.generation
    answers = local.generate([ChatRequest.build([("user", p)], model=model.slug,
                                                config=GenerateConfig(temperature=gen.evaluation.temperature,
                                                                      max_tokens=gen.evaluation.max_tokens, seed=seed))
                              for p in frame["prompt"]])
    frame["response"] = [a.text for a in answers]
    answers_frame = frame.assign(set="answers")
    wrong = [w or frame["correct_answer"].iloc[(i + 1) % len(frame)] for i, w in enumerate(frame["incorrect_answer"])]
    control = pd.concat([frame.assign(set="control", response=[f"The answer is {c}." for c in frame["correct_answer"]]),
                         frame.assign(set="control", response=[f"The answer is {w}." for w in wrong])],
                        ignore_index=True)
    frame = pd.concat([answers_frame, control], ignore_index=True)
    frame["reference_verdict"] = [judging.reference_verdict(d, r, c, f) for d, r, c, f in
                                  zip(frame["dataset"], frame["response"], frame["correct_answer"], frame["fields"])]
    refs = [judging.references(d, c, i, f) for d, c, i, f in
            zip(frame["dataset"], frame["correct_answer"], frame["incorrect_answer"], frame["fields"])]

    out = {"model": model.slug, "model_answers": len(answers_frame), "control_responses": len(control),
           "generation": gen.evaluation.model_dump()}
    with tempfile.TemporaryDirectory() as folder:
        llm = LLMResource(provider="local", local=local,
                          warehouse=WarehouseResource(database=str(Path(folder) / "w.duckdb")))
        for calibration in ("none", "content_free"):
            variant = settings.model_copy(update={"judge": settings.judge.model_copy(
                update={"choice_calibration": calibration})})
            _, verdicts, probs, _ = _judge(llm, variant, frame, frame["question"].tolist(), refs, print,
                                           ("CORRECT", "INCORRECT"))
            frame[f"judge_{calibration}"] = verdicts
            frame[f"p_{calibration}"] = probs
            for name, part in frame.assign(judge_verdict=verdicts).groupby("set"):
                table = agreement.scorer_agreement(pd.concat([part, part.assign(dataset="pooled")]))
                out.setdefault(name, {})[calibration] = {
                    r.dataset: {"n": int(r.n), "judge_correct": int(r.judge_correct),
                                "judge_incorrect": int(r.judge_incorrect),
                                "reference_correct": int(r.reference_correct),
                                "reference_incorrect": int(r.reference_incorrect),
                                "agreement": round(float(r.agreement), 4), "kappa": agreement.format_kappa(r.kappa)}
                    for r in table.itertuples()}
                print(f"{name}, choice_calibration = {calibration}:")
                for row in table.itertuples():
                    print("  " + agreement.describe(row))
            paired = out.setdefault("control_paired", {})[calibration] = paired_control(frame, calibration)
            print(f"control, choice_calibration = {calibration}: P(CORRECT) higher for the right response than for "
                  f"the wrong one in {paired['right_higher']} of {paired['items']} items (mean difference "
                  f"{paired['mean_difference']:+.4f})")
    target = paths.warmth_home() / "judge_calibration.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(out, indent=2))
    frame.drop(columns=["fields"]).to_csv(target.with_suffix(".csv"), index=False)
    print(f"wrote {target} and {target.with_suffix('.csv')}")
    return out


if __name__ == "__main__":
    main(*[int(a) for a in sys.argv[1:3]])
