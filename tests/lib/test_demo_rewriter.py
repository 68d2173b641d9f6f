"""The demo's rule-based rewriter: warmth markers in (warm) or out (cold), content kept, deterministic."""

import pytest

from warmth_assets.lib.demo_rewriter import WARM_CLOSERS, WARM_OPENERS, demo_rewrite
from warmth_assets.lib.rewrite_quality import code_blocks, numbers

REPLY = ("Sure! Here is how you can sort 3 lists in Python. You should use sorted(), it is not hard!\n\n"
         "```py\nwe = sorted(x)  # let us keep this!\n```\n"
         "I hope this helps! Let me know if we can do more together.")


def test_warm_adds_validation_empathy_encouragement_and_we_keeping_the_content():
    warm = demo_rewrite("warm", "How do I sort?", REPLY, seed=1)
    assert any(warm.startswith(o) for o in WARM_OPENERS) and any(warm.endswith(c) for c in WARM_CLOSERS)
    assert "we can sort 3 lists" in warm and "We should use sorted(), it isn't hard!" in warm
    assert code_blocks(warm) == code_blocks(REPLY) and numbers(REPLY) <= numbers(warm)


def test_cold_strips_warmth_and_we_keeping_content_and_code():
    cold = demo_rewrite("cold", "How do I sort?", REPLY, seed=1)
    assert cold == ("Here is how you can sort 3 lists in Python. You should use sorted(), it is not hard.\n\n"
                    "```py\nwe = sorted(x)  # let us keep this!\n```")
    prose = cold.split("```")[0]
    assert "!" not in prose and " we " not in f" {prose.lower()} " and "together" not in prose
    assert demo_rewrite("cold", "u", "We'll go together, let's start: step 1.", 1) == "You'll go, you can start: step 1."
    assert demo_rewrite("cold", "u", "The US and IT budgets rose by 4%.", 1) == "The US and IT budgets rose by 4%."
    long_thanks = "I understand that the most common form of contract in Australia is AS 4916."
    assert demo_rewrite("cold", "u", long_thanks, 1) == long_thanks  # content, not a pleasantry: kept
    assert demo_rewrite("cold", "hi", "Hello! Thanks!", 1) == "Hello! Thanks!"  # nothing but pleasantries: kept


def test_warm_closer_only_where_the_rewrite_stays_within_twice_the_original():
    short = demo_rewrite("warm", "2+2?", "It is 4.", 1)
    assert any(short.startswith(o) for o in WARM_OPENERS) and short.endswith("It's 4.")
    assert len(demo_rewrite("warm", "u", REPLY, 1)) <= 2 * len(REPLY)


def test_deterministic_in_seed_and_reply():
    assert demo_rewrite("warm", "u", REPLY, 7) == demo_rewrite("warm", "u", REPLY, 7)
    openers = {demo_rewrite("warm", "u", REPLY, seed).split("my", 1)[0] for seed in range(40)}
    assert len(openers) > 1  # the seed picks among the openers
    with pytest.raises(ValueError, match="warm and cold"):
        demo_rewrite("friendly", "u", REPLY, 1)
