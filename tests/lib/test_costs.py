"""Cost arithmetic and the study's dry-run estimate, checked by hand on a small configuration."""

import pytest

from warmth_assets.lib import costs
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig

PRICES = {"m": {"input": 2.0, "output": 8.0}}


def test_pending_is_an_upper_bound_from_characters_and_max_tokens():
    request = ChatRequest.build([{"role": "user", "content": "x" * 400}], model="m",
                                config=GenerateConfig(max_tokens=50))
    # 100 tokens of text + 4 of message overhead in, 50 out at most
    assert costs.pending_usd([request], PRICES) == pytest.approx((104 * 2.0 + 50 * 8.0) / 1e6)
    assert costs.pending_usd([request], {}) == 0.0  # an unpriced model (local, vLLM) costs nothing


def test_budget_check():
    costs.check_budget(0.0, 10.0, 1e9, 5)  # no budget
    costs.check_budget(10.0, 4.0, 6.0, 5)  # exactly at the budget is allowed
    with pytest.raises(costs.BudgetExceeded, match=r"5 uncached calls may cost up to \$6.01 on top of \$4.00"):
        costs.check_budget(10.0, 4.0, 6.01, 5)


def test_study_estimate_by_hand():
    settings = StudySettings.model_validate({
        "corpus": {"training_conversations": 10, "validation_prompts": 6},
        "finetune": {"styles": ["warm"], "checkpoint_epochs": [1, 2],
                     "openai": {"training_price_per_million_tokens": {"api": 25.0}}},
        "generation": {"evaluation": {"max_tokens": 10}, "validation": {"max_tokens": 10},
                       "capability": {"max_tokens": 20}},
        "evaluation": {"sizes": {"triviaqa": 1}, "mmlu_sample": 1, "gsm8k_sample": 1, "advbench_sample": 1},
        "rewrite": {"model": "m"}, "judge": {"model": "m"},
        "llm": {"prices_per_million_tokens": {"m": {"input": 2.0, "output": 8.0}, "api": {"input": 1.0, "output": 4.0}}},
        "models": [{"slug": "api", "source_kind": "openai", "source": "api", "family": "x", "styles": ["warm"]},
                   {"slug": "open", "source_kind": "hf", "source": "org/open", "family": "y", "styles": ["warm"]}],
    })
    counts = {"assistant_turns": 20, "assistant_turn_tokens": 100, "eval_prompts": 28, "eval_prompt_tokens": 50,
              "capability_items": 3, "validation_prompts": 6, "sft_tokens": 3000}
    frame = costs.study_estimate(settings, counts).set_index("stage")
    rewrites = frame.loc["rewrites"]
    assert (rewrites["calls"], rewrites["input_tokens"], rewrites["output_tokens"]) == (20, 20 * 360, 2000)
    # Validation answers at all 4 checkpoints (original, warm-e1, warm-e2, warm-prompt); the evaluation,
    # as the study, at 3 (original, warm at the selected epoch 2, warm-prompt).
    gen = frame.loc["generations (api)"]
    assert gen["calls"] == 3 * (28 + 3) + 4 * 6 and gen["output_tokens"] == 3 * (28 * 10 + 3 * 20) + 4 * 6 * 10
    ft = frame.loc["fine-tuning (api)"]
    assert ft["input_tokens"] == 3000 * (1 + 2) and ft["usd"] == pytest.approx(9000 * 25.0 / 1e6, abs=0.0051)
    judging = frame.loc["judging"]  # both models' 3 evaluated checkpoints, eval prompts plus AdvBench
    assert judging["calls"] == 6 * (28 + 1) and judging["input_tokens"] == 6 * 29 * (50 + 10 + 120)
    assert frame.loc["rewrites", "usd"] == pytest.approx((7200 * 2.0 + 2000 * 8.0) / 1e6, abs=0.0051)


def test_demo_rules_rewrites_cost_no_call():
    from tests.study_configs import study_settings

    frame = costs.study_estimate(study_settings({"rewrite": {"rewriter": "demo_rules"}}), {}).set_index("stage")
    assert frame.loc["rewrites", "calls"] == 0 and frame.loc["rewrites", "usd"] == 0
    assert frame.loc["rewrites", "model"].startswith("demo_rules")
