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
