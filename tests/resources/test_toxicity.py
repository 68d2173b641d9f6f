"""The Detoxify resource: long texts reach `Detoxify.predict` as prefixes with the very same tokens."""

import pytest

from resources.toxicity import ToxicityResource
from tests.lib.test_toxicity import HARD
from warmth_assets.lib.toxicity import same_tokens_prefix


def test_detoxify_scores_the_shortened_texts_exactly_as_the_whole_ones(standin_dir):
    """The real Detoxify class on the stand-in (a BERT WordPiece tokenizer, truncating at 64): its scores of the
    prefixes equal its scores of the whole texts, and the long texts were cut."""
    model = ToxicityResource(standin=True, standin_dir=str(standin_dir), max_length=64, device="cpu").load()
    limit = ToxicityResource.prefix_tokens(model)
    assert limit == 64
    texts = HARD + [t * 3 for t in HARD]
    cut = [same_tokens_prefix(text, limit) for text in texts]
    assert sum(len(c) < len(t) for c, t in zip(cut, texts)) >= 12
    whole, short = model.predict(texts), model.predict(cut)
    assert whole.keys() == short.keys()
    for label in whole:
        assert short[label] == pytest.approx(whole[label], abs=0, rel=0), label  # bit for bit


def test_a_tokenizer_of_another_kind_gets_the_texts_whole(standin_dir):
    model = ToxicityResource(standin=True, standin_dir=str(standin_dir), max_length=64, device="cpu").load()
    from tokenizers.pre_tokenizers import Digits

    model.tokenizer.backend_tokenizer.pre_tokenizer = Digits()  # ends pieces at digits, not at spaces
    assert ToxicityResource.prefix_tokens(model) == 0
