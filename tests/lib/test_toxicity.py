import pandas as pd
import pytest

from warmth_assets.lib.toxicity import LABELS, conversation_maxima, score_distinct


def test_each_distinct_text_is_scored_once_in_length_sorted_batches():
    calls = []

    def predict(batch):
        calls.append(list(batch))
        return {"toxicity": [len(t) / 100 for t in batch], "insult": [0.0 for _ in batch]}

    texts = ["ccc", "a", "bb", "a", "ccc", "dddd"]
    scores = score_distinct(texts, predict, batch_size=2)
    assert calls == [["a", "bb"], ["ccc", "dddd"]]
    assert scores.loc["ccc", "toxicity"] == pytest.approx(0.03)


def test_single_text_batch_is_unsqueezed():
    scores = score_distinct(["only"], lambda b: {"toxicity": 0.7}, batch_size=8)  # Detoxify returns a float
    assert scores.loc["only", "toxicity"] == 0.7


def test_maxima_per_label_and_threshold():
    turns = pd.DataFrame({"conversation_id": ["c1", "c1", "c2"], "text": ["x", "y", "z"]})
    text_scores = pd.DataFrame({"toxicity": [0.1, 0.6, 0.2], "insult": [0.3, 0.0, 0.49]}, index=["x", "y", "z"])
    out = conversation_maxima(turns, text_scores, threshold=0.5).set_index("conversation_id")
    assert out.loc["c1", "toxicity"] == 0.6 and out.loc["c1", "insult"] == 0.3 and out.loc["c1", "nsfw"]
    assert not out.loc["c2", "nsfw"] and out.loc["c2", "max_toxicity"] == 0.49
    assert list(out.columns[:len(LABELS)]) == LABELS and pd.isna(out.loc["c1", "sexual_explicit"])


# Long texts of the kinds ShareGPT holds, and what could move a piece boundary: runs of mixed whitespace, tabs and
# newlines, code, CJK, accents, zero-width and control characters, an ideographic space, a very long "word".
HARD = [
    "word " * 400,
    "def f(x):\n\t\treturn x  +  1  # comment\n" * 60,
    "東京は日本の首都です。 今日は いい天気 ですね " * 60,
    "Café naïve résumé coöperate \u200b zero\u200bwidth \x1c sep\x1c arated \u3000 ideographic " * 40,
    "a" * 3000 + " then some ordinary words after one very long one " * 40,
    "short text that is never cut",
    "  leading and trailing   runs of   spaces  " * 80 + "   ",
    "word\t\t next\u00a0one \u0301accent " * 100,
    "東京は日本の首都です" * 300,  # no ASCII space at all: whole
]


def _trained_tokenizers(max_length: int):
    """Real tokenizers of the three families Detoxify uses, trained here (nothing to download)."""
    from tokenizers import BertWordPieceTokenizer, ByteLevelBPETokenizer, SentencePieceUnigramTokenizer
    from transformers import PreTrainedTokenizerFast

    corpus = HARD * 3
    made = {}
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(corpus, vocab_size=300, min_frequency=1)
    made["wordpiece"] = PreTrainedTokenizerFast(tokenizer_object=wordpiece._tokenizer, unk_token="[UNK]",
                                                pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]")
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(corpus, vocab_size=400, min_frequency=1, special_tokens=["<pad>"])
    made["byte_level_bpe"] = PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, pad_token="<pad>")
    unigram = SentencePieceUnigramTokenizer()
    unigram.train_from_iterator(corpus, vocab_size=300, special_tokens=["<pad>", "<unk>"], unk_token="<unk>")
    made["sentencepiece"] = PreTrainedTokenizerFast(tokenizer_object=unigram._tokenizer, pad_token="<pad>",
                                                    unk_token="<unk>")
    for tokenizer in made.values():
        tokenizer.model_max_length = max_length
    return made


@pytest.mark.parametrize("max_length", [8, 16, 64])
def test_a_long_text_is_cut_to_a_prefix_the_tokenizer_reads_as_the_very_same_tokens(max_length):
    """Pinned against the tokenizers themselves: truncated at max_length, every prefix gives exactly the ids
    (and mask) of its whole text, for WordPiece, byte-level BPE and SentencePiece; long texts are really cut."""
    from warmth_assets.lib.toxicity import same_tokens_prefix

    cut = [same_tokens_prefix(text, max_length) for text in HARD]
    assert sum(len(c) < len(t) for c, t in zip(cut, HARD)) >= 6  # the long ones were cut, not left whole
    assert cut[5] == HARD[5] and cut[8] == HARD[8]  # short, and without an ASCII space: whole
    for name, tokenizer in _trained_tokenizers(max_length).items():
        whole = tokenizer(HARD, truncation=True, padding=True)
        shortened = tokenizer(cut, truncation=True, padding=True)
        assert shortened["input_ids"] == whole["input_ids"], name
        assert shortened["attention_mask"] == whole["attention_mask"], name


def test_a_prefix_keeps_one_run_more_than_the_tokens_kept():
    from warmth_assets.lib.toxicity import same_tokens_prefix

    assert same_tokens_prefix("x " * 100, 10) == ("x " * 11).rstrip()
    assert same_tokens_prefix("-- " * 50 + "x " * 11, 10) == "-- " * 50 + ("x " * 11).rstrip()  # no letter: no token
    assert same_tokens_prefix("x " * 10 + "-- " * 50, 10) == "x " * 10 + "-- " * 50  # ten runs: whole
