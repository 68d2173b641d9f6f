"""Warehouse rows as Inspect evaluation logs, so that `inspect view` shows every answer, verdict and judge reply.

Evaluation teams read transcripts in Inspect View; here the answers sit in DuckDB. This module maps the rows of one
model x checkpoint to `inspect_ai.log` objects (one `EvalLog` per evaluation set) with Inspect's own classes, so
the viewer and `inspect_ai.analysis` read them as any Inspect run. It reads no file and no table: the asset
(assets/inspect_logs.py) and the importer hand it the rows. Everything in a log comes from the rows (ids, times:
the calls' own `created_at`; imported results have none and carry `NO_TIME`), so a re-run builds the same log; a
file whose content digest is unchanged is not rewritten (the `.eval` zip would stamp new entry times).
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from inspect_ai.log import (EvalConfig, EvalDataset, EvalLog, EvalMetric, EvalResults, EvalRevision, EvalSample,
                            EvalScore, EvalSpec, EvalStats, read_eval_log, write_eval_log)
from inspect_ai.model import (ChatCompletionChoice, ChatMessageAssistant, ChatMessageSystem, ChatMessageUser,
                              GenerateConfig, ModelOutput, ModelUsage)
from inspect_ai.scorer import Score

from warmth_assets.lib.intervals import wilson

JUDGED_SETS = ("triviaqa", "truthfulqa", "medqa", "disinfo")
CAPABILITY_SETS = ("mmlu", "gsm8k", "advbench")
VALIDATION_SET = "validation"
NO_TIME = "1970-01-01T00:00:00+00:00"  # imported results carry no time of their own
VERDICT_VALUE = {"CORRECT": "C", "INCORRECT": "I"}  # Inspect's CORRECT / INCORRECT; anything else is "N"
DIGEST_KEY = "warmth_content_sha256"
MESSAGE_CLASS = {"system": ChatMessageSystem, "user": ChatMessageUser, "assistant": ChatMessageAssistant}


@dataclass(frozen=True)
class LogHeader:
    """What every log of one partition shares: the eval header's model, revision and provenance."""

    model: str
    checkpoint: str
    source: str                       # the model's source as a co-author can read it (no absolute path)
    config_name: str
    config_sha256: str
    revision: EvalRevision | None
    imported: bool = False
    extra: dict = field(default_factory=dict)


def git_revision(root: str | Path) -> EvalRevision | None:
    """The checkout's commit as Inspect's revision (origin: the remote's URL, else "local"); None without git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    try:
        origin = git("remote", "get-url", "origin") or "local"
    except subprocess.SubprocessError:
        origin = "local"
    return EvalRevision(type="git", origin=origin, commit=commit, dirty=dirty)


def _time(value) -> str | None:
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    return pd.Timestamp(value).tz_localize("UTC").isoformat() if pd.Timestamp(value).tzinfo is None \
        else pd.Timestamp(value).isoformat()


def _int(value) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _plain(value):
    """A cell as JSON data (NaN and NA as None, numpy scalars as Python ones)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if value is None or (not isinstance(value, (str, bytes, dict)) and pd.isna(value)):
        return None
    return value.item() if hasattr(value, "item") else value


def _messages(sample_id: str, messages: list[dict]) -> list:
    return [MESSAGE_CLASS.get(m["role"], ChatMessageUser)(id=f"{sample_id}/in{i}", content=m["content"])
            for i, m in enumerate(messages)]


def sample(row: dict, messages: list[dict], target: list[str] | str, scores: dict[str, Score], metadata: dict,
           call: dict | None) -> EvalSample:
    """One response as an Inspect sample: our prompt id, the messages sent, the answer with its usage."""
    sample_id = str(row["prompt_id"])
    model = str(row.get("generator") or row.get("model") or "")
    usage = ModelUsage(input_tokens=_int((call or row).get("prompt_tokens")),
                       output_tokens=_int((call or row).get("completion_tokens")))
    usage.total_tokens = usage.input_tokens + usage.output_tokens
    answer = ChatMessageAssistant(id=f"{sample_id}/out", content=str(row.get("response") or ""), model=model)
    stop = "max_tokens" if row.get("finish_reason") == "length" else "stop"
    output = ModelOutput(model=model, choices=[ChatCompletionChoice(message=answer, stop_reason=stop)], usage=usage)
    inputs = _messages(sample_id, messages)
    when = _time((call or {}).get("created_at"))
    return EvalSample(id=sample_id, epoch=1, input=inputs, target=target, messages=[*inputs, answer], output=output,
                      scores=scores, metadata={k: _plain(v) for k, v in metadata.items()}, uuid=sample_id,
                      model_usage={model: usage} if model else {}, started_at=when, completed_at=when,
                      total_time=_plain((call or {}).get("latency_s")))


def verdict_scores(row: dict) -> dict[str, Score]:
    """The verdict as the analysis read it (the judge's raw reply as explanation), the refusal flag, and reference
    match beside the judge where both exist."""
    verdict = str(row.get("verdict"))
    scores = {"verdict": Score(
        value=VERDICT_VALUE.get(verdict, "N"), answer=str(row.get("response") or ""),
        explanation=str(row.get("judge_raw") or ""),
        metadata={"verdict": verdict, "scorer": _plain(row.get("scorer")) or "llm_judge",
                  "judge_verdict": _plain(row.get("judge_verdict")), "verdict_prob": _plain(row.get("verdict_prob")),
                  "judge_model": _plain(row.get("judge_model")),
                  "judge_prompt_version": _plain(row.get("judge_prompt_version"))})}
    scores["refusal"] = Score(value=bool(_plain(row.get("refusal"))),
                              metadata={"refusal_corrected": _plain(row.get("refusal_corrected"))})
    reference = _plain(row.get("reference_verdict"))
    if reference and _plain(row.get("judge_verdict")):
        scores["reference_match"] = Score(value=VERDICT_VALUE.get(reference, "N"), metadata={"verdict": reference})
    return scores


def capability_scores(row: dict) -> dict[str, Score]:
    correct = _plain(row.get("is_correct"))
    return {"capability": Score(value="N" if correct is None else ("C" if correct else "I"),
                                answer=_plain(row.get("extracted")), explanation=str(row.get("judge_raw") or ""),
                                metadata={"expected": _plain(row.get("answer")),
                                          "verdict_prob": _plain(row.get("verdict_prob")),
                                          "judge_model": _plain(row.get("judge_model"))})}


def warmth_scores(row: dict) -> dict[str, Score]:
    if _plain(row.get("warmth")) is None:
        return {}
    return {"sociot_warmth": Score(value=float(row["warmth"]), metadata={
        "se": _plain(row.get("se")), "warm": _plain(row.get("warm")), "cold": _plain(row.get("cold")),
        "variant": _plain(row.get("variant")), "scoring_lm": _plain(row.get("scoring_lm"))})}


def _metrics(values: dict[str, float]) -> dict[str, EvalMetric]:
    # A metric that cannot be formed (no scored sample: NaN) is left out, never written as a number.
    return {name: EvalMetric(name=name, value=round(v, 6)) for name, v in values.items() if not math.isnan(v)}


def error_rate(verdicts: pd.Series, refusals: pd.Series, datasets: pd.Series) -> EvalScore:
    """Error rate with its 95% Wilson interval under the study's refusal rule (lib/analysis.observations): a
    Disinfo refusal counts as correct, other refusals and unparseable verdicts are left out. Unlike the report, no
    checkpoint is left out for being outside the comparisons (a log is one checkpoint's)."""
    known = verdicts.isin(list(VERDICT_VALUE))
    disinfo = datasets == "disinfo"
    included = known & (disinfo | ~refusals)
    incorrect = ((verdicts == "INCORRECT") & ~(disinfo & refusals) & included).sum()
    ci = wilson(int(incorrect), int(included.sum()))
    metrics = _metrics({"error_rate": ci.estimate, "ci_low": ci.low, "ci_high": ci.high})
    return EvalScore(name="verdict", scorer="verdict", scored_samples=int(included.sum()),
                     unscored_samples=int((~included).sum()), metrics=metrics,
                     metadata={"rule": "study refusal rule; 95% Wilson interval"})


def mean_score(name: str, values: pd.Series) -> EvalScore:
    values = values.dropna().astype(float)
    mean = float(values.mean()) if len(values) else float("nan")
    return EvalScore(name=name, scorer=name, scored_samples=len(values),
                     metrics=_metrics({"mean": mean}))


def eval_log(header: LogHeader, dataset: str, template_version: str, samples: list[EvalSample],
             generate: dict | None, results: list[EvalScore], task_metadata: dict | None = None) -> EvalLog:
    """One evaluation set of one checkpoint as a finished Inspect eval (task = dataset, version = template)."""
    times = sorted(t for s in samples for t in (s.started_at,) if t) or [NO_TIME]
    run = hashlib.sha256(f"{header.model}|{header.checkpoint}|{dataset}".encode()).hexdigest()[:22]
    ids = [s.id for s in samples]
    spec = EvalSpec(
        eval_id=run, run_id=run, task_id=f"{dataset}@{template_version}", created=times[0], task=dataset,
        task_version=template_version, dataset=EvalDataset(name=dataset, samples=len(samples), sample_ids=ids),
        model=f"warmth/{header.model}", model_args={"slug": header.model, "source": header.source,
                                                     "checkpoint": header.checkpoint},
        model_generate_config=GenerateConfig(**(generate or {})), config=EvalConfig(epochs=1), revision=header.revision,
        tags=["imported"] if header.imported else None,
        metadata={"config": header.config_name, "config_sha256": header.config_sha256, "imported": header.imported,
                  "checkpoint": header.checkpoint, **header.extra, **(task_metadata or {})})
    log = EvalLog(eval=spec, status="success", samples=samples,
                  results=EvalResults(total_samples=len(samples), completed_samples=len(samples), scores=results),
                  stats=EvalStats(started_at=times[0], completed_at=times[-1]))
    # in the eval header (read back with header_only), over everything else the log holds
    spec.metadata[DIGEST_KEY] = hashlib.sha256(log.model_dump_json(exclude={"location", "etag"}).encode()).hexdigest()
    return log


def write_log(log: EvalLog, path: Path) -> bool:
    """Write `log` as `.eval` unless the file there already holds the same content; True when written."""
    if path.is_file():
        try:
            if (read_eval_log(str(path), header_only=True).eval.metadata or {}).get(DIGEST_KEY) == \
                    log.eval.metadata[DIGEST_KEY]:
                return False
        except Exception:  # noqa: BLE001 - an unreadable old file is simply replaced
            pass
    path.parent.mkdir(parents=True, exist_ok=True)
    write_eval_log(log, str(path), format="eval")
    return True


def log_folder(home: Path, model: str, checkpoint: str) -> Path:
    """Where a partition's logs live: WARMTH_HOME/inspect/<model>/<checkpoint>/ (`inspect view --log-dir` on it)."""
    return home / "inspect" / model / checkpoint


def write_logs(logs: dict[str, EvalLog], folder: Path) -> dict[str, tuple[Path, bool]]:
    """Each log as `<set>.eval` in `folder` (unchanged ones left as they are); logs of sets no longer there removed."""
    written = {name: (folder / f"{name}.eval", write_log(log, folder / f"{name}.eval")) for name, log in logs.items()}
    for stale in folder.glob("*.eval") if folder.is_dir() else []:
        if stale.stem not in logs:
            stale.unlink()
    return written


def call_lookup(calls: pd.DataFrame) -> dict[str, dict]:
    """llm_calls rows by request key, with the request body parsed (its messages are the ones sent)."""
    out = {}
    for row in calls.to_dict("records"):
        row["request"] = json.loads(row.pop("request_json") or "{}")
        out[row["request_key"]] = row
    return out


def _messages_of(row: dict, call: dict | None, rebuild) -> list[dict]:
    """The messages sent: the call's recorded request, else rebuilt from the prompt (rows of before the key)."""
    if call and call["request"].get("messages"):
        return call["request"]["messages"]
    return rebuild(str(row.get("prompt") or ""))


def _belief(template: str | None) -> str:
    # The user's stated belief: present in the user-opinion templates (incorrect / correct), absent elsewhere.
    return template if template in ("incorrect", "correct") else "absent"


def partition_logs(header: LogHeader, judged: pd.DataFrame, capability: pd.DataFrame, validation: pd.DataFrame,
                   calls: dict[str, dict], generate: dict[str, dict], templates: dict[str, str],
                   rebuild, refusal_list: str = "published") -> dict[str, EvalLog]:
    """One log per evaluation set of a partition, keyed by set name (the file's stem). `generate` and `templates`
    are keyed "eval", "capability", "validation"; `rebuild(prompt)` gives the messages of a row without a call;
    `refusal_list` ([analysis] refusal_list) is matched in the responses for the error rate, as the analysis does."""
    from warmth_assets.lib.analysis import REFUSAL_LISTS

    logs: dict[str, EvalLog] = {}
    common = {"checkpoint": header.checkpoint, "imported": header.imported}
    for dataset, rows in judged.groupby("dataset", sort=True):
        samples = []
        for row in rows.sort_values("prompt_id").to_dict("records"):
            call = calls.get(row.get("request_key") or "")
            samples.append(sample(row, _messages_of(row, call, rebuild), [str(row.get("correct_answer") or "")],
                                  verdict_scores(row), {
                                      **common, "dataset": dataset, "item": row.get("item_key"),
                                      "template": row.get("prompt_template"),
                                      "template_group": row.get("template_group"),
                                      "context_group": row.get("context_group"), "amendment": row.get("amendment_type"),
                                      "belief": _belief(row.get("prompt_template")),
                                      "incorrect_answer": row.get("incorrect_answer"),
                                      "cache_key": row.get("request_key"),
                                      "evaluation_date": row.get("evaluation_date")}, call))
        refusals = rows["response"].fillna("").map(lambda text: bool(REFUSAL_LISTS[refusal_list].search(text)))
        logs[dataset] = eval_log(header, dataset, templates["eval"], samples, generate.get("eval"),
                                 [error_rate(rows["verdict"], refusals, rows["dataset"])])
    for dataset, rows in capability.groupby("dataset", sort=True):
        samples = []
        for row in rows.sort_values("prompt_id").to_dict("records"):
            call = calls.get(row.get("request_key") or "")
            samples.append(sample(row, _messages_of(row, call, rebuild), str(row.get("answer") or ""),
                                  capability_scores(row), {**common, "dataset": dataset,
                                                           "cache_key": row.get("request_key")}, call))
        scored = rows["is_correct"].astype("boolean")
        logs[dataset] = eval_log(header, dataset, templates["capability"], samples, generate.get("capability"),
                                 [mean_score("accuracy", scored.astype("Float64"))])
    if len(validation):
        samples = []
        for row in validation.sort_values("prompt_id").to_dict("records"):
            call = calls.get(row.get("request_key") or "")
            samples.append(sample(row, _messages_of(row, call, rebuild), "", warmth_scores(row),
                                  {**common, "dataset": VALIDATION_SET, "query_type": row.get("query_type"),
                                   "cache_key": row.get("request_key")}, call))
        logs[VALIDATION_SET] = eval_log(header, VALIDATION_SET, templates["validation"], samples,
                                        generate.get("validation"), [mean_score("sociot_warmth", validation["warmth"])
                                                                     ] if "warmth" in validation else [])
    return logs
