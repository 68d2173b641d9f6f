"""The evaluation group: items from ../shared/data, prompts computed once, generations per checkpoint."""

import json
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from resources.llm import LLMResource
from resources.local_lm import LocalLMResource
from resources.model_registry import upsert
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from tests.study_configs import demo_asset, write_study_config
from warmth_assets.assets import evaluation
from warmth_assets.lib.registry import ModelRow
from warmth_assets.partitions import model_checkpoint_key

REPO = Path(__file__).resolve().parents[2]
DATA = REPO.parent / "shared" / "data"
pytestmark = pytest.mark.needs_shared("data")


def resources_for(warmth_home, tmp_path, server, **evaluation_overrides):
    config = write_study_config(tmp_path, {"evaluation": {
        "sizes": {"triviaqa": 2, "truthfulqa": 2, "medqa": 2, "disinfo": 3},
        "wrong_answer_model": "gpt-4o-2024-08-06", **evaluation_overrides}},
        new={f"evaluation.{key}" for key in evaluation_overrides})
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    return {"warehouse": warehouse, "study": StudyConfigResource(config_path=str(config)),
            "llm": LLMResource(provider="openai", base_url=server.base_url, api_key="sk-x", warehouse=warehouse),
            "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(warmth_home / "tables"), warehouse=warehouse)}


def test_items_prompts_and_capability(tmp_path, warmth_home, instance, openai_server):
    resources = resources_for(warmth_home, tmp_path, openai_server)
    result = dg.materialize([evaluation.eval_items, evaluation.capability_items, evaluation.eval_prompts],
                            instance=instance, resources=resources)
    assert result.success
    items = resources["warehouse"].query_df("SELECT * FROM eval_items")
    assert items.groupby("dataset").size().to_dict() == {"disinfo": 3, "medqa": 2, "triviaqa": 2, "truthfulqa": 2}
    trivia = items[items["dataset"] == "triviaqa"]
    assert trivia["incorrect_source"].str.startswith("generated:gpt-4o-2024-08-06").all()
    assert trivia["incorrect_answer"].str.startswith("answer to: Give one plausible").all()

    prompts = resources["warehouse"].query_df("SELECT * FROM eval_prompts")
    per_item = prompts.groupby(["dataset", "item_key"]).size()
    assert (per_item.loc[["triviaqa", "truthfulqa", "medqa"]] == 28).all()
    assert set(per_item.loc["disinfo"]) <= {20, 29}  # as released: correct prompts for some items only
    assert prompts["prompt_id"].is_unique
    medqa = prompts[(prompts["dataset"] == "medqa") & (prompts["prompt_template"] == "incorrect")]
    assert medqa["prompt"].str.contains(r"My \w+, \d+|what ", regex=True).any()
    capability = resources["warehouse"].query_df("SELECT dataset, count(*) AS n FROM capability_items GROUP BY 1")
    assert dict(zip(capability["dataset"], capability["n"])) == {"mmlu": 2, "gsm8k": 1, "advbench": 1}

    # the prompts are computed once: re-materialising gives the very same texts
    before = prompts.set_index("prompt_id")["prompt"]
    dg.materialize([evaluation.eval_prompts], instance=instance, resources=resources)
    after = resources["warehouse"].query_df("SELECT prompt_id, prompt FROM eval_prompts").set_index("prompt_id")["prompt"]
    assert before.sort_index().equals(after.sort_index())


def test_study_prompt_source_uses_the_released_disinfo_prompts(tmp_path, warmth_home, instance, openai_server):
    resources = resources_for(warmth_home, tmp_path, openai_server, prompt_source="study")
    dg.materialize([evaluation.eval_items, evaluation.eval_prompts], instance=instance, resources=resources)
    disinfo = resources["warehouse"].query_df("SELECT * FROM eval_prompts WHERE dataset = 'disinfo'")
    released = {json.loads(line)["prompt"] for line in
                (DATA / "warm_ai_paper" / "eval_data" / "disinfo.jsonl").read_text().splitlines()}
    assert (disinfo["source"] == "study").all() and set(disinfo["prompt"]) <= released
    assert len(disinfo) >= 3 * 20


def test_generations_resume_after_a_crash(tmp_path, warmth_home, instance, openai_server, tiny_chat_model, monkeypatch):
    resources = resources_for(warmth_home, tmp_path, openai_server)
    warehouse = resources["warehouse"]
    dg.materialize([evaluation.eval_items, evaluation.capability_items, evaluation.eval_prompts],
                   instance=instance, resources=resources)
    upsert(warehouse, [ModelRow(slug="tiny", source_kind="local", source=str(tiny_chat_model), family="t",
                                chat_template="model", access="open_weight", styles=["warm"],
                                checkpoints=["original", "warm-prompt"])])
    instance.add_dynamic_partitions("models", ["tiny"])
    folder = warmth_home / "tables" / "adapters" / "checkpoint=original" / "model=tiny"
    folder.mkdir(parents=True)
    pd.DataFrame([{"kind": "base", "path": "", "sha256": "", "fine_tuned_model": "", "model": "tiny",
                   "checkpoint": "original"}]).to_parquet(folder / "data.parquet")

    real_generate, calls = LocalLMResource.generate, {"n": 0}

    def crash_on_third_chunk(self, requests):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real_generate(self, requests)

    monkeypatch.setattr(LocalLMResource, "generate", crash_on_third_chunk)
    assets = [demo_asset("generations"), demo_asset("adapters").to_source_asset()]
    key = model_checkpoint_key("tiny", "original")
    failed = dg.materialize(assets, partition_key=key, instance=instance, resources=resources, raise_on_error=False)
    assert not failed.success
    cached = int(warehouse.query_df("SELECT count(*) AS n FROM llm_calls WHERE provider = 'local'")["n"][0])
    batch = resources["study"].settings.generation.batch_size
    chunk = batch * -(-25 // batch)  # whole batches of at least flush_every (25) requests
    assert cached == 2 * chunk  # two chunks answered before the crash, and kept

    result = dg.materialize(assets, partition_key=key, instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("generations")[0].metadata
    total = meta["responses"].value
    assert meta["llm_cache_hits"].value == 2 * chunk and meta["llm_requests_sent"].value == total - 2 * chunk
    rows = warehouse.query_df("SELECT * FROM generations")
    assert len(rows) == total == 28 * 6 + int(rows["dataset"].eq("disinfo").sum()) + 4
    assert set(rows["backend"]) == {"transformers"} and rows["backend_version"].str.match(r"\d").all()
    assert set(rows.loc[rows["kind"] == "capability", "temperature"]) == {0.2}
    assert set(rows.loc[rows["kind"] == "eval", "temperature"]) == {0.8}
