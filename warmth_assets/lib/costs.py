"""Dollars: what calls already cost, what pending calls may cost at most, what the study will cost.

Token counts before a call are estimated from characters (about 4 per token for English text with
the GPT-4o tokenizer family), and the answer is counted at its max_tokens cap, so the figure a
budget is checked against is an upper bound.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from warmth_assets.lib.config import StudySettings

CHARS_PER_TOKEN = 4
MESSAGE_OVERHEAD_TOKENS = 4  # role and separators per chat message
# [?] Averages used only when the warehouse does not hold the texts yet (a dry run before the corpus):
ASSUMED = {"assistant_turn_tokens": 250, "user_turn_tokens": 60, "eval_prompt_tokens": 80,
           "judge_template_tokens": 120, "turns_per_conversation": 2.5,
           "verdict_tokens": 8}  # a structured verdict, {"verdict":"INCORRECT"}; the one-word answer was ~2


class BudgetExceeded(RuntimeError):
    """Calls that would take the study past [operations] budget_usd; nothing was sent."""


def text_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def request_tokens(messages: list[dict]) -> int:
    return sum(text_tokens(m["content"]) + MESSAGE_OVERHEAD_TOKENS for m in messages)


def price_for(model: str, prices: dict[str, dict[str, float]]) -> dict[str, float] | None:
    """The model's price, a fine-tuned model (`ft:BASE:org:suffix:id`) priced as its base; None: unknown."""
    if model in prices:
        return prices[model]
    if model.startswith("ft:") and model.split(":")[1] in prices:
        return prices[model.split(":")[1]]
    return None


def unpriced(models, prices) -> list[str]:
    return sorted({m for m in models if price_for(m, prices) is None})


def usd(model: str, input_tokens: float, output_tokens: float, prices: dict[str, dict[str, float]]) -> float:
    price = price_for(model, prices) or {}
    return (input_tokens * price.get("input", 0.0) + output_tokens * price.get("output", 0.0)) / 1e6


def pending_usd(requests, prices) -> float:
    """Upper bound on what `requests` (ChatRequest-like: model, message_dicts(), max_tokens) cost."""
    return sum(usd(r.model, request_tokens(r.message_dicts()), r.max_tokens, prices) for r in requests)


def spent_usd(usage_by_model, prices) -> float:
    """From `llm_calls` summed per model (columns model, prompt_tokens, completion_tokens)."""
    return float(sum(usd(r.model, r.prompt_tokens, r.completion_tokens, prices) for r in usage_by_model.itertuples()))


def check_budget(budget: float, spent: float, pending: float, calls: int, unpriced_models: list[str] = ()) -> None:
    if budget and unpriced_models:
        raise BudgetExceeded(
            f"no price for {unpriced_models}: with a budget ([operations] budget_usd = {budget:g}) every model called "
            "needs one in [llm] prices_per_million_tokens (a fine-tuned ft:BASE:... model takes BASE's). Nothing was sent.")
    if budget and spent + pending > budget:
        raise BudgetExceeded(
            f"{calls} uncached calls may cost up to ${pending:,.2f} on top of ${spent:,.2f} already spent, "
            f"over the budget of ${budget:,.2f} ([operations] budget_usd). Nothing was sent; cached answers are "
            "kept. Raise the budget, or shrink the study (sizes, models, checkpoints), and re-run."
        )


def study_estimate(settings: StudySettings, counts: dict) -> pd.DataFrame:
    """Calls, tokens and dollars of the configured study's API work: rewrites, judging, API-model
    generations (validation and eval), API fine-tuning. `counts` holds what the warehouse knows
    (characters and counts of the real texts); missing entries fall back to the configuration."""
    import pandas as pd

    prices = settings.llm.prices_per_million_tokens
    rows = []
    styles = len(settings.finetune.styles)
    turns = counts.get("assistant_turns") or settings.corpus.training_conversations * ASSUMED["turns_per_conversation"]
    turn_tokens = counts.get("assistant_turn_tokens") or ASSUMED["assistant_turn_tokens"]
    context_tokens = turn_tokens + ASSUMED["user_turn_tokens"] + 200  # the system prompt and wrapper
    if settings.rewrite.rewriter == "demo_rules":  # the demo's rule-based stand-in calls no model
        rows.append(("rewrites", "demo_rules (rule-based demo rewriter)", 0, 0, 0))
    else:
        rows.append(("rewrites", settings.rewrite.model, turns * styles, turns * styles * context_tokens,
                     turns * styles * turn_tokens))

    eval_prompts = counts.get("eval_prompts") or sum(settings.evaluation.sizes.values()) * 28
    prompt_tokens = counts.get("eval_prompt_tokens") or ASSUMED["eval_prompt_tokens"]
    capability = counts.get("capability_items") or (settings.evaluation.mmlu_sample + settings.evaluation.gsm8k_sample
                                                     + settings.evaluation.advbench_sample)
    validation = counts.get("validation_prompts") or settings.corpus.validation_prompts
    gen = settings.generation
    checkpoints_total = 0
    evaluated = settings.evaluated_checkpoints()
    for model in settings.models:
        epochs = model.checkpoint_epochs or settings.finetune.checkpoint_epochs
        checkpoints = 2 + len(model.styles) * len(epochs)  # validation answers: every checkpoint
        tested = checkpoints if evaluated is None else 2 + len(model.styles)
        checkpoints_total += tested
        if model.access == "api":
            n = tested * (eval_prompts + capability) + checkpoints * validation
            out = (tested * (eval_prompts * gen.evaluation.max_tokens + capability * gen.capability.max_tokens)
                   + checkpoints * validation * gen.validation.max_tokens)
            rows.append((f"generations ({model.slug})", model.source, n, n * prompt_tokens, out))
            sft_tokens = counts.get("sft_tokens") or turns * (turn_tokens + ASSUMED["user_turn_tokens"])
            # One job per saved epoch count, each trained from the start: sum of the epochs.
            trained = sft_tokens * sum(epochs) * len(model.styles)
            price = settings.finetune.openai.training_price_per_million_tokens.get(model.source, 0.0)
            rows.append((f"fine-tuning ({model.slug})", model.source, len(epochs) * len(model.styles), trained, 0,
                         trained * price / 1e6))
    judged = checkpoints_total * (eval_prompts + settings.evaluation.advbench_sample)
    judge_in = prompt_tokens + gen.evaluation.max_tokens + ASSUMED["judge_template_tokens"]
    verdict_tokens = min(ASSUMED["verdict_tokens"], settings.judge.max_tokens)  # the budget counts the cap
    rows.append(("judging", settings.judge.model, judged, judged * judge_in, judged * verdict_tokens))

    frame = pd.DataFrame([r if len(r) == 6 else (*r, None) for r in rows],
                         columns=["stage", "model", "calls", "input_tokens", "output_tokens", "usd"])
    frame["usd"] = [u if not pd.isna(u) else usd(m, i, o, prices)
                    for m, i, o, u in zip(frame["model"], frame["input_tokens"], frame["output_tokens"], frame["usd"])]
    frame[["calls", "input_tokens", "output_tokens"]] = frame[["calls", "input_tokens", "output_tokens"]].round().astype(int)
    frame["usd"] = frame["usd"].round(2)
    return frame
