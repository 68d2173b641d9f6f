"""SocioT "reference" pinned to a line-by-line port of the released code (tests/sociot_released_port.py).

A tiny random GPT-2 (dropout 0, so every pass is the same), texts of very different lengths, an empty
text, one over 300 characters and one over 1024 tokens. The naive path (one batch of 4 per side, what
`score_texts` runs for a dropout-free model) must agree within 1e-6, the batched path (many units of
different lengths in one forward pass) within 1e-5.
"""

import pytest
import torch

from tests import sociot_released_port as released
from tests.tiny_models import make_gpt2
from warmth_assets.lib.sociot import side_sequences, score_texts

TEXTS = [
    "",
    "Hi.",
    "The answer is 42.",
    "I'm so happy to help you with this, my dear friend!",
    "Quantum chromodynamics describes the strong interaction between quarks and gluons; its coupling grows at low "
    "energies, confining colour charge, while at high energies asymptotic freedom lets perturbation theory work. "
    "Lattice simulations, jets at colliders, and heavy-ion collisions all probe it, from hadron masses to the "
    "quark-gluon plasma of the early universe.",  # 363 characters: cut at 300
    "  ",  # not empty: quoted
]
LONG = "\U0001F642" * 300  # 300 characters, 4 byte tokens each: over 1024 tokens, truncated
NAIVE_TOL, BATCHED_TOL = 1e-6, 1e-5


@pytest.fixture(scope="module")
def scorer(tiny_gpt2):
    _, tokenizer = tiny_gpt2
    model = make_gpt2(tokenizer, 0.0, n_positions=1024)
    model.train()  # as the released code runs it; dropout 0 makes every pass the same
    return model, tokenizer


@pytest.fixture(scope="module")
def released_rows(scorer):
    model, tokenizer = scorer
    return {text: released.compute_row(model, tokenizer, text, n_samples=2) for text in TEXTS + [LONG]}


def _assert_close(ours, row, tol):
    warm, cold, warmth, se = row
    assert abs(ours.warm - warm) <= tol and abs(ours.cold - cold) <= tol and abs(ours.warmth - warmth) <= 2 * tol
    assert ours.se == pytest.approx(se, abs=1e-12)


def test_naive_path_equals_the_released_code(scorer, released_rows):
    model, tokenizer = scorer
    texts = TEXTS + [LONG]
    for text, ours in zip(texts, score_texts(texts, model, tokenizer, samples=2)):
        _assert_close(ours, released_rows[text], NAIVE_TOL)


@pytest.mark.parametrize("batch_size", [8, 64])
def test_batched_path_equals_the_released_code(scorer, released_rows, batch_size):
    model, tokenizer = scorer
    texts = TEXTS + [LONG]
    scores = score_texts(texts, model, tokenizer, samples=2, batch_size=batch_size, reuse_deterministic=False)
    for text, ours in zip(texts, scores):
        _assert_close(ours, released_rows[text], BATCHED_TOL)


def test_empty_text_unquoted_others_quoted_and_cut():
    assert side_sequences("", "warm") == ["My friend said, ", "The lover said, ", "The mentor said, ", "The idol said, "]
    assert side_sequences("  ", "cold")[0] == 'The stranger said, "  "'
    assert side_sequences(TEXTS[4], "warm")[0] == 'My friend said, "' + TEXTS[4][:300] + '"'


def test_the_pin_can_fail(scorer, released_rows):
    """The tolerances separate the released computation from the old one (no attention mask, `""` quoted,
    no truncation)."""
    model, tokenizer = scorer
    cold_words = released.category_terms["sociot_warmth"][4:]

    def without_mask(**inputs):
        inputs.pop("attention_mask")
        return model(**inputs)

    # "examiner" is several tokens here: the cold batch is padded, and without the mask the padded
    # positions' logits (which count in the loss) differ; the longer the text, the smaller the share of padding
    for text, tol in (("Hi.", BATCHED_TOL), ("The answer is 42.", BATCHED_TOL), (TEXTS[4], NAIVE_TOL)):
        unmasked, _ = released.compute_ci(without_mask, tokenizer, model.device, text[:300], cold_words, n_samples=2)
        assert abs(unmasked - released_rows[text][1]) > 5 * tol

    # an empty text quoted as '""' (our old rule) scores differently from the released unquoted one
    rows = [torch.tensor(tokenizer(s)["input_ids"]) for s in ('My friend said, ""', 'The lover said, ""',
                                                             'The mentor said, ""', 'The idol said, ""')]
    batch = torch.nn.utils.rnn.pad_sequence(rows, batch_first=True)
    mask = torch.nn.utils.rnn.pad_sequence([torch.ones_like(r) for r in rows], batch_first=True)
    with torch.no_grad():
        quoted = -float(model(input_ids=batch, attention_mask=mask, labels=batch).loss)
    assert abs(quoted - released_rows[""][0]) > 10 * BATCHED_TOL

    # untruncated, the long text does not fit the model's 1024 positions at all
    assert len(tokenizer('My friend said, "' + LONG + '"')["input_ids"]) > 1024 == model.config.n_positions
