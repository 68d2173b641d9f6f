"""What produced the report's numbers: configuration and its hash, code version, models and where they come from,
judge, scoring LM, sizes, exclusions; the unpublished choices in force; which results are a demonstration.

Demonstration rule: the schema defaults of lib/config/ are the study's published sizes (1,617 training
conversations, 1,500 validation prompts, 500/500/500/125 evaluation items). A configuration that runs below any
of them is at toy scale (`toy_scale`), and every model this pipeline trained or evaluated under it (any registry
origin but `import`) is labelled a demonstration at toy scale. Imported results (the study's own released
outputs) are never labelled so: their scale is that of the files imported, and too few rows show in the
verdicts. The rule reads sizes, not names, so a renamed demo file is still caught and a full-scale run of any
model is not.
"""

from __future__ import annotations

import importlib
import json
import re
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from warmth_assets.lib.config import StudySettings

UNPUBLISHED = "[?]"
# Versioned prompt constants in code that the study did not publish: (what, module, attribute, note)
CODE_CHOICES = [
    ("capability prompt version", "warmth_assets.lib.capability", "TEMPLATE_VERSION",
     "MMLU / GSM8K / AdvBench prompts (lib/capability.py); not published"),
    ("wrong-answer prompt version", "warmth_assets.lib.wrong_answers", "PROMPT_VERSION",
     "TriviaQA wrong answers generated when [evaluation] sharma_answer_jsonl is empty (lib/wrong_answers.py)"),
]


def code_version(root: str | Path) -> str:
    """The git commit of the checkout (with a note when tracked files differ from it), else the package version."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()

    try:
        commit = git("rev-parse", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
        return f"git {commit}" + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        from importlib.metadata import PackageNotFoundError, version

        try:
            return f"warmth {version('warmth')} (package version; no git checkout)"
        except PackageNotFoundError:
            return "unknown (no git checkout, package not installed)"


def toy_scale(settings: StudySettings) -> list[str]:
    """How the configuration falls short of the study's published sizes (the schema defaults); empty at full scale."""
    from warmth_assets.lib.config import CorpusSettings, EvaluationSettings

    corpus, evaluation, notes = CorpusSettings(), EvaluationSettings(), []
    for key in ("training_conversations", "validation_prompts"):
        ours, study = getattr(settings.corpus, key), getattr(corpus, key)
        if ours < study:
            notes.append(f"{ours:,} {key.replace('_', ' ')} (study: {study:,})")
    smaller = {d: n for d, n in settings.evaluation.sizes.items() if n < evaluation.sizes.get(d, 0)}
    if smaller:
        notes.append("evaluation items " + ", ".join(f"{d} {n} (study: {evaluation.sizes[d]})"
                                                     for d, n in sorted(smaller.items())))
    return notes


def demonstration_models(registry: pd.DataFrame, settings: StudySettings) -> set[str]:
    """Models trained or evaluated here under a toy-scale configuration (module docstring)."""
    if registry is None or registry.empty or not toy_scale(settings):
        return set()
    return set(registry.loc[registry["origin"] != "import", "slug"])


def origin_label(origin: str, access: str) -> str:
    if origin == "import":
        return "imported (released outputs)"
    how = "API model, fine-tuned through the provider's API" if access == "api" else "open weights, LoRA-trained here"
    return how + (" (found by new_model_sensor)" if origin == "sensor" else "")


def shareable_source(source: str) -> str:
    """A model's source as a co-author can read it: a file or folder on this machine by its name and the sha256 of
    its contents (no absolute path in a report that is sent around); hub ids and package files as they are."""
    from warmth_assets.lib.hashing import file_sha256, folder_size_and_sha256

    path = Path(source)
    if not path.is_absolute():
        return source
    if path.is_file():
        return f"{path.name} (sha256 {file_sha256(path)[:16]})"
    if path.is_dir():
        return f"{path.name}/ (sha256 of its files {folder_size_and_sha256(path)[1][:16]})"
    return f"{path.name} (not on this machine)"


def model_table(registry: pd.DataFrame, judged: pd.DataFrame, exclusions: pd.DataFrame, compared: dict[str, str],
                study_names: dict[str, str | None], demos: set[str]) -> pd.DataFrame:
    """One row per model with results. `judged`: model, dataset, items, rows, unparseable, judge (per model and
    dataset, from judgments); `exclusions`: model, exclusion, n (analysis_observations); `compared`: model -> its
    warm checkpoint."""
    models = sorted(set(judged["model"]) if len(judged) else set()) or sorted(registry["slug"])
    by_slug = registry.set_index("slug") if len(registry) else pd.DataFrame()
    rows = []
    for model in models:
        reg = by_slug.loc[model] if model in by_slug.index else None
        mine = judged[judged["model"] == model] if len(judged) else judged
        excluded = exclusions[(exclusions["model"] == model) & (exclusions["exclusion"] != "")] if len(exclusions) \
            else exclusions
        rows.append({
            "model": model + (" (demonstration, toy scale)" if model in demos else ""),
            "study's model": study_names.get(model) or "-",
            "origin": origin_label(reg["origin"], reg["access"]) if reg is not None else "not in model_registry",
            "source": f"{reg['source_kind']}: {shareable_source(reg['source'])}" if reg is not None else "-",
            "compared": f"original vs {compared[model]}" if compared.get(model) else "no warm checkpoint selected",
            "judge (prompt version)": "; ".join(sorted(set(mine["judge"]))) if len(mine) else "-",
            "items per dataset": ", ".join(f"{d} {int(n)}" for d, n in zip(mine["dataset"], mine["items"])) or "-",
            "judged": int(mine["rows"].sum()) if len(mine) else 0,
            "unparseable": int(mine["unparseable"].sum()) if len(mine) else 0,
            "excluded": ", ".join(f"{e}: {int(n)}" for e, n in zip(excluded["exclusion"], excluded["n"])) or "none",
        })
    return pd.DataFrame(rows)


def verdict_scorers(judge, table: pd.DataFrame) -> str:
    """The provenance line of the scorers: whose verdicts each dataset's analysis uses ([judge] scorers; the study's
    LLM judge unless reference match is chosen), the choice calibration, and the judge's agreement with reference
    match per dataset (`lib/agreement.scorer_agreement` of the responses judged here)."""
    from warmth_assets.lib.agreement import format_kappa
    from warmth_assets.lib.judging import JUDGED_DATASETS

    names = {"llm_judge": "LLM judge", "reference_match": "reference match"}
    line = (", ".join(f"{d}: {names[judge.scorer(d)]}" for d in JUDGED_DATASETS)
            + f" (configured; choice calibration `{judge.choice_calibration}`, in-process judges only)")
    if table is not None and len(table):
        line += ". Judge vs reference match: " + "; ".join(
            f"{r.dataset} {'-' if pd.isna(r.agreement) else f'{r.agreement:.1%}'} agreement, kappa "
            f"{format_kappa(r.kappa)} (n = {int(r.n)})" for r in table.itertuples())
    return line


def _note(text: str) -> str:
    return " ".join(text.replace(UNPUBLISHED, "").split()).strip(" .") or "not published"


def _schema_choices(section, prefix: str) -> list[tuple[str, object, str]]:
    from pydantic import BaseModel

    found = []
    for name, field in type(section).model_fields.items():
        value = getattr(section, name)
        if isinstance(value, BaseModel):
            found += _schema_choices(value, f"{prefix}{name}.")
        elif field.description and UNPUBLISHED in field.description:
            found.append((f"{prefix}{name}", value, _note(field.description)))
    return found


def _commented_choices(text: str) -> dict[str, str]:
    """Keys whose line in an annotated TOML file carries a `# ... [?] ...` comment: dotted key -> comment."""
    section, found = "", {}
    for line in text.splitlines():
        header = re.match(r"^\s*(\[\[?)\s*([A-Za-z0-9_.-]+)\s*\]\]?", line)
        if header:
            section = "" if header.group(1) == "[[" else header.group(2) + "."
            continue
        entry = re.match(r"^\s*([A-Za-z0-9_-]+)\s*=.*?#(.*)$", line)
        if entry and section != "" and UNPUBLISHED in entry.group(2):
            found[section + entry.group(1)] = _note(entry.group(2))
    return found


def _value_at(settings: StudySettings, dotted: str):
    value = settings
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


def _shown(value) -> str:
    if hasattr(value, "model_dump"):  # a block annotated as a whole (`capability = { ... }  # [?]`)
        value = value.model_dump()
    if isinstance(value, str):
        return value if value else '""'
    return json.dumps(value if not isinstance(value, tuple) else list(value))


def unpublished_choices(settings: StudySettings, annotated: list[str | Path] = ()) -> pd.DataFrame:
    """Every unpublished choice in force, one row each (key, value, note): schema fields whose description is
    marked [?], keys marked [?] by a comment in the annotated TOML files (the configuration in force and the
    reference dagster_project.toml), the versioned prompt constants of CODE_CHOICES, and our own variants when
    chosen (masked SocioT, plateau checkpoint selection)."""
    rows = {key: (value, note) for key, value, note in _schema_choices(settings, "")}
    for path in annotated:
        if Path(path).is_file():
            for key, note in _commented_choices(Path(path).read_text(encoding="utf-8")).items():
                try:
                    value = _value_at(settings, key)
                except AttributeError:
                    continue
                rows.setdefault(key, (value, note))
    rows.setdefault("rewrite.prompt_version", (settings.rewrite.prompt_version,
                                               "system prompts published; our user-message wrapper is not"))
    if settings.sociot.variant != "reference":
        rows["sociot.variant"] = (settings.sociot.variant, "our masked variant, not the released implementation")
    if settings.sociot.selection_rule != "fixed_epoch":
        rows["sociot.selection_rule"] = (settings.sociot.selection_rule, "the study analysed a fixed epoch (2)")
    table = [{"choice": f"`{key}`", "value in force": _shown(value), "note": note}
             for key, (value, note) in sorted(rows.items())]
    for what, module, attribute, note in CODE_CHOICES:
        try:
            value = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            continue
        table.append({"choice": f"{what} (`{module.rsplit('.', 1)[1]}.{attribute}`)", "value in force": _shown(value),
                      "note": note})
    return pd.DataFrame(table, columns=["choice", "value in force", "note"])
