"""Each asset's `code_version`: a short hash of what changes its output besides its inputs.

Dagster records the code version with every materialisation and marks an asset stale (and, through
the lineage, everything downstream) when the current one differs. So the hash covers exactly what
the asset reads: the settings it uses (dotted paths), the versioned prompts or rules it sends, and
`code`, bumped by hand when the asset's code changes what it writes from the same inputs. A setting
left out here would change outputs without marking anything stale; one put in needlessly marks an
asset stale that would re-run to the same result (cached calls make that cheap, not free).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Callable

from pydantic import BaseModel

from warmth_assets.lib import capability, query_types, rewrite_prompts, wrong_answers
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.demo_rewriter import DEMO_REWRITER_VERSION
from warmth_assets.lib.judging import JUDGE_PROMPTS


def _judge_prompt(settings: StudySettings) -> dict:
    # The text too: an edit of a published prompt without a new version must still show.
    return {"judge": [settings.judge.prompt_version, repr(JUDGE_PROMPTS[settings.judge.prompt_version])]}


def _rewrite_prompts(settings: StudySettings) -> dict:
    if settings.rewrite.rewriter == "demo_rules":
        return {"rewriter": DEMO_REWRITER_VERSION}
    return {"rewrite": rewrite_prompts.PROMPTS.get(settings.rewrite.prompt_version, settings.rewrite.prompt_version)}


def _warm_system_prompt(settings: StudySettings) -> dict:
    # `warm-prompt` checkpoints answer under the warm rewrite's system prompt.
    return {"warm_system": rewrite_prompts.PROMPTS.get(settings.rewrite.prompt_version, {}).get("system", {})
            .get("warm", settings.rewrite.prompt_version)}


@dataclass(frozen=True)
class Reads:
    settings: tuple[str, ...] = ()
    prompts: Callable[[StudySettings], dict] = field(default=lambda settings: {})
    code: str = "1"


SEED = "project.seed"
JUDGE = ("judge.model", "judge.temperature", "judge.prompt_version", "judge.max_tokens", SEED)

READS: dict[str, Reads] = {
    "model_registry": Reads(("models", "finetune.styles", "finetune.checkpoint_epochs")),
    "cost_estimate": Reads(("models", "rewrite.model", "rewrite.rewriter", "finetune.styles", "finetune.checkpoint_epochs",
                            "finetune.openai.training_price_per_million_tokens", "generation", "evaluation",
                            "judge.model", "judge.max_tokens", "llm.prices_per_million_tokens",
                            "operations.budget_usd", "corpus.training_conversations", "corpus.validation_prompts")),
    "sharegpt_conversations": Reads(("corpus.source", "data.dir")),
    "conversation_labels": Reads(("corpus.detoxify", "corpus.query_types"),
                                 lambda s: {"query_type_rules": query_types.RULES_VERSION}),
    "training_conversations": Reads(("corpus", SEED)),
    "validation_prompts": Reads(("corpus", SEED)),
    "style_rewrites": Reads(("rewrite.rewriter", "rewrite.model", "rewrite.temperature", "rewrite.prompt_version",
                             "rewrite.max_tokens", "rewrite.length_ratio_band", SEED), _rewrite_prompts),
    "rewrite_audit": Reads(("rewrite.verification_sample", "rewrite.rewriter", SEED)),
    "sft_datasets": Reads(),
    "finetune_runs": Reads(("finetune.lora", "finetune.checkpoint_epochs", "finetune.openai.learning_rate_multiplier",
                            "models", SEED)),
    "adapters": Reads(),
    "validation_generations": Reads(("generation.validation", "rewrite.prompt_version", SEED), _warm_system_prompt),
    "warmth_scores": Reads(("sociot.lm", "sociot.samples", "sociot.max_chars", "sociot.variant", SEED)),
    "warmth_trajectory": Reads(("sociot.selection_rule", "sociot.plateau_fraction", "finetune.selected_epoch")),
    "eval_items": Reads(("evaluation", "data", "generation.wrong_answers", SEED),
                        lambda s: {"wrong_answers": wrong_answers.PROMPT_VERSION}),
    "capability_items": Reads(("evaluation.mmlu_sample", "evaluation.gsm8k_sample", "evaluation.advbench_sample",
                               "data.dir", SEED), lambda s: {"capability": capability.TEMPLATE_VERSION}),
    "eval_prompts": Reads(("evaluation.prompt_source", "data.dir", SEED)),
    "generations": Reads(("generation.evaluation", "generation.capability", "rewrite.prompt_version", SEED),
                         _warm_system_prompt),
    "judgments": Reads((*JUDGE, "judge.scorers", "judge.choice_calibration"), _judge_prompt),
    "capability_scores": Reads((*JUDGE, "judge.choice_calibration"), _judge_prompt),
    # The generation settings shown as each log's generate config, the refusal list of its error rate, the prompt
    # version that rebuilds the messages of rows without a call key.
    "inspect_logs": Reads(("generation", "rewrite.prompt_version", "analysis.refusal_list", SEED)),
    "judge_validation": Reads(("judge.validation_sample", "judge.annotations_csv", "judge.scorers", SEED)),
    "analysis_observations": Reads(("finetune.selected_epoch", "analysis.refusal_list")),
    "paired_tests": Reads(("analysis.alpha", "analysis.fdr_family")),
    "regression_tables": Reads(("analysis.model4_form", "analysis.alpha", "analysis.min_headline_observations")),
    "marginal_effects": Reads(("analysis.model4_form", "analysis.alpha", "analysis.min_headline_observations")),
    # The report's appendix lists the whole configuration in force.
    "study_report": Reads(("",)),
}


def _setting(settings: StudySettings, dotted: str):
    """The value at `dotted` as plain JSON data; "" is the whole configuration."""
    value = settings
    for name in filter(None, dotted.split(".")):
        value = getattr(value, name)
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [v.model_dump(mode="json") if isinstance(v, BaseModel) else v for v in value]
    return value


def code_version(asset: str, settings: StudySettings) -> str:
    """12 hex digits, the same for the same settings and prompts (no time, no path of this checkout)."""
    if asset not in READS:
        raise KeyError(f"asset {asset!r} has no entry in code_versions.READS: say what changes its output")
    reads = READS[asset]
    payload = {"code": reads.code, "settings": {path: _setting(settings, path) for path in reads.settings},
               "prompts": reads.prompts(settings)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]
