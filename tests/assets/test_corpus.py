"""The corpus group materialised end to end on a generated, truncated ShareGPT file."""

import json
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest

from resources.study import StudyConfigResource
from resources.toxicity import ToxicityResource
from resources.warehouse import WarehouseResource
from tests.study_configs import write_study_config
from warmth_assets.assets import corpus
from warmth_assets.checks import CHECKS

OPENERS = {
    "refusal": ("Tell me a secret", "I'm sorry, but I can't share that."),
    "factual": ("What is the boiling point of water?", "100 degrees Celsius at sea level."),
    "creative": ("Write a poem about rain", "Drops on the window..."),
    "technical": ("Fix my code please", "```python\nprint('hi')\n```"),
    "advice": ("I need advice on saving money", "Start with a budget."),
    "other": ("Good morning!", "Good morning to you too."),
}


class KeywordToxicity(ToxicityResource):
    """Detoxify's interface with a transparent rule: texts containing 'NSFWWORD' score 0.9."""

    def load(self, tokenizer_texts=None):
        class Model:
            @staticmethod
            def predict(texts):
                return {"toxicity": [0.9 if "NSFWWORD" in t else 0.01 for t in texts],
                        "insult": [0.02 for _ in texts]}
        return Model()


def write_sharegpt(path: Path, per_type: int = 8) -> None:
    records = []
    for t, (user, reply) in OPENERS.items():
        for i in range(per_type):
            turns = [{"from": "human", "value": f"{user} #{i}"}, {"from": "gpt", "value": reply}]
            if i == 0:
                turns = [{"from": "gpt", "value": reply}] + turns  # a split record opening with the assistant
            if i == 1:
                turns += [{"from": "human", "value": f"more {j}"} if j % 2 == 0 else {"from": "gpt", "value": "ok"}
                          for j in range(30)]  # long: must be cut to 20 turns
            if i == 2:
                turns[-1]["value"] += " NSFWWORD"
            records.append({"id": f"{t}{i}_0", "conversations": turns})
    text = json.dumps(records + [{"id": "cut", "conversations": [{"from": "human", "value": "never end"}]}])
    path.write_text(text[: text.rindex("never") + 3])  # cut mid-record, like the packaged file


def study_file(tmp_path: Path, source: Path, **corpus) -> Path:
    return write_study_config(tmp_path, {"corpus": {"source": str(source), **corpus}})


def materialize(tmp_path, instance, config: Path, toxicity: ToxicityResource):
    warehouse = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    result = dg.materialize(
        [*dg.load_assets_from_modules([corpus]), *CHECKS[1:]],
        instance=instance,
        resources={"warehouse": warehouse, "study": StudyConfigResource(config_path=str(config)),
                   "toxicity": toxicity},
        raise_on_error=False,
    )
    return result, warehouse


def test_corpus_group_end_to_end(tmp_path, instance):
    source = tmp_path / "sharegpt.json"
    write_sharegpt(source)
    config = study_file(tmp_path, source, training_conversations=12, validation_prompts=6)
    result, warehouse = materialize(tmp_path, instance, config, KeywordToxicity())
    assert result.success
    assert all(e.passed for e in result.get_asset_check_evaluations())
    assert len(result.get_asset_check_evaluations()) == 4

    meta = result.asset_materializations_for_node("sharegpt_conversations")[0].metadata
    assert meta["records_read"].value == 48 and meta["file_ended_early"].value is True

    labels = warehouse.query_df("SELECT * FROM conversation_labels")
    assert Counter(labels["query_type"]) == {t: 8 for t in OPENERS}
    assert labels["nsfw"].sum() == 6 and labels[labels["nsfw"]]["conversation_id"].str.match(r"^[a-z]+2_0$").all()

    training = warehouse.query_df("SELECT * FROM training_conversations")
    per_conversation = training.groupby("conversation_id").agg(turns=("turn_index", "size"), types=("query_type", "first"))
    assert Counter(per_conversation["types"]) == {t: 2 for t in OPENERS}
    assert per_conversation["turns"].max() <= 20
    assert not training["conversation_id"].str.match(r"^[a-z]+2_0$").any()  # NSFW never kept
    firsts = training[training["turn_index"] == 0]
    assert (firsts["role"] == "user").all()

    validation = warehouse.query_df("SELECT * FROM validation_prompts")
    assert Counter(validation["query_type"]) == {t: 1 for t in OPENERS}
    assert not set(validation["conversation_id"]) & set(training["conversation_id"])
    assert not set(validation["prompt"]) & set(training.loc[training["role"] == "user", "text"])
    tmeta = result.asset_materializations_for_node("corpus_samples")
    assert {m.asset_key.path[0] for m in tmeta} == {"training_conversations", "validation_prompts"}


def test_shortfall_stops_the_run_with_the_type_named(tmp_path, instance):
    source = tmp_path / "sharegpt.json"
    write_sharegpt(source, per_type=3)
    config = study_file(tmp_path, source, training_conversations=12, validation_prompts=6)
    result, warehouse = materialize(tmp_path, instance, config, KeywordToxicity())
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "refusal has 2 eligible conversations, needs 3" in str(failure.event_specific_data.error)
    # what was computed before the failure is kept
    assert len(warehouse.query_df("SELECT * FROM conversation_labels")) == 18
    assert warehouse.query_df("SELECT count(*) AS n FROM training_conversations")["n"][0] == 0


def test_missing_source_is_a_clear_error(tmp_path, instance):
    config = study_file(tmp_path, tmp_path / "nowhere.json")
    result, _ = materialize(tmp_path, instance, config, KeywordToxicity())
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "nowhere.json not found" in str(failure.event_specific_data.error)


@pytest.mark.slow
def test_real_detoxify_runs_offline_on_the_standin(tmp_path, instance, standin_dir):
    source = tmp_path / "sharegpt.json"
    write_sharegpt(source)
    config = study_file(tmp_path, source, training_conversations=12, validation_prompts=6)
    result, warehouse = materialize(
        tmp_path, instance, config, ToxicityResource(standin=True, standin_dir=str(standin_dir), max_length=64))
    assert result.success
    meta = result.asset_materializations_for_node("conversation_labels")[0].metadata
    assert meta["detoxify"].value.startswith("untrained stand-in")
    assert meta["texts_scored"].value > 0 and meta["texts_per_second"].value > 0
    labels = warehouse.query_df("SELECT toxicity, insult, threat FROM conversation_labels")
    assert labels.notna().all().all() and ((labels >= 0) & (labels <= 1)).all().all()
