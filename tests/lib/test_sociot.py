"""SocioT: the batched scorer against the released per-text loop, on a tiny GPT-2 built in the test."""

import math

import pytest
import torch

from tests.sociot_naive import naive_score_texts
from warmth_assets.lib.sociot import naive_side_value, score_texts, side_sequences

TEXTS = [
    "I'm so happy to help you with this, my dear friend!",
    "The answer is 42.",
    "Paris is the capital of France. " * 20,  # longer than 300 characters: cut
    "Use sorted() to sort a list in Python.",
]


def test_context_strings_quote_the_first_300_characters():
    warm = side_sequences("x" * 400, "warm")
    assert warm[0] == 'My friend said, "' + "x" * 300 + '"'
    assert [s.split(",")[0] for s in warm] == ["My friend said", "The lover said", "The mentor said", "The idol said"]
    cold = side_sequences("hi", "cold")
    assert cold == ['The stranger said, "hi"', 'The enemy said, "hi"', 'The examiner said, "hi"', 'The dictator said, "hi"']


def test_without_dropout_identical_to_the_naive_loop_bit_for_bit(tiny_gpt2):
    make, tokenizer = tiny_gpt2
    model = make(0.0)
    fast = score_texts(TEXTS, model, tokenizer, samples=5)
    naive = naive_score_texts(TEXTS, model, tokenizer, samples=5)
    assert [(f.warm, f.cold, f.warmth, f.se) for f in fast] == [(n.warm, n.cold, n.warmth, n.se) for n in naive]
    assert all(f.se == 0.0 for f in fast)


@pytest.mark.parametrize("variant", ["reference", "masked"])
def test_batched_path_computes_the_same_values(tiny_gpt2, variant):
    make, tokenizer = tiny_gpt2
    model = make(0.0)
    fast = score_texts(TEXTS, model, tokenizer, samples=2, batch_size=12, variant=variant, reuse_deterministic=False)
    for text, score in zip(TEXTS, fast):
        for side, value in (("warm", score.warm), ("cold", score.cold)):
            assert value == pytest.approx(naive_side_value(model, tokenizer, text, side, variant), abs=1e-5)


def test_variants_differ_where_padding_exists(tiny_gpt2):
    make, tokenizer = tiny_gpt2
    model = make(0.0)
    model.train()
    lengths = {len(tokenizer(s)["input_ids"]) for s in side_sequences(TEXTS[1], "cold")}
    assert len(lengths) > 1  # "examiner" is several tokens here: the other cold sequences get padding
    reference = naive_side_value(model, tokenizer, TEXTS[1], "cold", "reference")
    masked = naive_side_value(model, tokenizer, TEXTS[1], "cold", "masked")
    assert reference != masked  # only the reference variant scores the padding


def test_with_dropout_statistically_equivalent_to_the_naive_loop(tiny_gpt2):
    make, tokenizer = tiny_gpt2
    model = make(0.1)
    torch.manual_seed(1)
    fast = score_texts(TEXTS[:2], model, tokenizer, samples=200, batch_size=64)
    torch.manual_seed(2)
    naive = naive_score_texts(TEXTS[:2], model, tokenizer, samples=200)
    for f, n in zip(fast, naive):
        assert f.se > 0 and n.se > 0
        for a, b, sa, sb in ((f.warm, n.warm, f.warm_se, n.warm_se), (f.cold, n.cold, f.cold_se, n.cold_se)):
            assert abs(a - b) / math.sqrt(sa**2 + sb**2) < 4.0  # same mean
            assert 0.6 < sa / sb < 1.6  # same spread
        assert f.warmth == pytest.approx(f.warm - f.cold)
        assert f.se == pytest.approx(math.sqrt(f.warm_se**2 + f.cold_se**2))


def test_unknown_variant_is_refused(tiny_gpt2):
    make, tokenizer = tiny_gpt2
    with pytest.raises(ValueError, match="unknown SocioT variant"):
        score_texts(["x"], make(0.0), tokenizer, variant="fancy")
