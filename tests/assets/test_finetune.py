"""finetune_runs and adapters: a tiny local model trained for real, and GPT-4o through the loopback API."""

import hashlib
import json
from pathlib import Path

import dagster as dg
import pandas as pd

from resources.llm import LLMResource
from resources.model_registry import upsert
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from tests.study_configs import demo_asset, write_study_config
from warmth_assets.assets import finetune
from warmth_assets.lib.registry import ModelRow
from warmth_assets.partitions import model_checkpoint_key, model_style_key

CONVERSATIONS = [[{"role": "user", "content": f"what is two plus {i}"},
                  {"role": "assistant", "content": f"answer is {i + 2} my dear"}] for i in range(8)]


def setup(tmp_path, warmth_home, instance, server=None, **registry):
    # The LoRA batch pinned here, not taken from demo.toml's tuning: 8 examples make 2 steps per epoch
    config = write_study_config(tmp_path, {"finetune": {"openai": {"poll_s": 0.01, "poll_cap_s": 0.02},
                                                        "lora": {"effective_batch_size": 4, "per_device_batch_size": 2}}},
                                new={"finetune.openai"})
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    upsert(warehouse, [ModelRow(slug=registry["slug"], source_kind=registry["source_kind"], source=registry["source"],
                                family="test", chat_template="model", access=registry["access"],
                                styles=registry["styles"], checkpoints=registry["checkpoints"])])
    instance.add_dynamic_partitions("models", [registry["slug"]])
    folder = warmth_home / "artifacts" / "sft" / "warm"
    folder.mkdir(parents=True)
    text = "".join(json.dumps({"messages": c}) + "\n" for c in CONVERSATIONS)
    for name in ("trl", "openai"):
        (folder / f"{name}.jsonl").write_text(text)
    sft = pd.DataFrame({"conversation_id": [f"c{i}" for i in range(8)],
                        "messages_json": [json.dumps(c) for c in CONVERSATIONS], "n_messages": 2,
                        "jsonl_path": str(folder / "trl.jsonl"),
                        "jsonl_sha256": hashlib.sha256(text.encode()).hexdigest()})
    warehouse.replace_rows("training_conversations", pd.DataFrame(
        [{"conversation_id": f"c{i}", "query_type": "factual", "turn_index": t, "role": m["role"], "text": m["content"]}
         for i, c in enumerate(CONVERSATIONS) for t, m in enumerate(c)]))
    io = PartitionedParquetIOManager(base_dir=str(warmth_home / "tables"), warehouse=warehouse)
    (warmth_home / "tables" / "sft_datasets" / "style=warm").mkdir(parents=True)
    sft.assign(style="warm").to_parquet(warmth_home / "tables" / "sft_datasets" / "style=warm" / "data.parquet")
    io._refresh_view(dg.AssetKey("sft_datasets"))
    llm = LLMResource(provider="openai", base_url=server.base_url if server else None, api_key="sk-x", warehouse=warehouse)
    return {"warehouse": warehouse, "study": StudyConfigResource(config_path=str(config)), "llm": llm,
            "parquet_io_manager": io}


def test_lora_run_and_its_adapters(tmp_path, warmth_home, instance, tiny_chat_model):
    resources = setup(tmp_path, warmth_home, instance, slug="tiny", source_kind="local", source=str(tiny_chat_model),
                      access="open_weight", styles=["warm"],
                      checkpoints=["original", "warm-e1", "warm-e2", "warm-prompt"])
    result = dg.materialize([demo_asset("finetune_runs")], partition_key=model_style_key("tiny", "warm"),
                            instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("finetune_runs")[0].metadata
    assert meta["kind"].value == "lora" and meta["device"].value == "cpu"
    assert meta["checkpoints"].value == ["warm-e1", "warm-e2"]
    assert meta["loss_curve"].value.startswith("![tiny warm: training loss](data:image/png;base64,")
    assert meta["optimizer_steps"].value == 4  # 8 examples / (2 x 2) = 2 steps per epoch, 2 epochs

    for checkpoint in ("original", "warm-e1", "warm-e2", "warm-prompt"):
        dg.materialize([demo_asset("finetune_runs").to_source_asset(), demo_asset("adapters")],
                       partition_key=model_checkpoint_key("tiny", checkpoint), instance=instance, resources=resources,
                       selection=[demo_asset("adapters")])
    rows = resources["warehouse"].query_df("SELECT * FROM adapters ORDER BY checkpoint").set_index("checkpoint")
    assert rows.loc["original", "kind"] == "base" and rows.loc["warm-prompt", "kind"] == "base+warm_system_prompt"
    assert rows.loc["warm-e2", "kind"] == "lora" and rows.loc["warm-e2", "bytes"] > 0
    assert len(rows.loc["warm-e2", "sha256"]) == 64 and rows.loc["warm-e2", "sha256"] != rows.loc["warm-e1", "sha256"]
    assert Path(rows.loc["warm-e1", "path"], "adapter_model.safetensors").exists()
    assert rows.loc["warm-e2", "model"] == "tiny"


def test_unconfigured_style_is_refused(tmp_path, warmth_home, instance, tiny_chat_model):
    resources = setup(tmp_path, warmth_home, instance, slug="tiny", source_kind="local", source=str(tiny_chat_model),
                      access="open_weight", styles=["warm"], checkpoints=["original", "warm-e1"])
    result = dg.materialize([demo_asset("finetune_runs")], partition_key=model_style_key("tiny", "cold"),
                            instance=instance, resources=resources, raise_on_error=False)
    assert not result.success
    failure = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"][0]
    assert "is not trained cold" in str(failure.event_specific_data.error)


def test_api_model_fine_tuned_through_the_openai_api(tmp_path, warmth_home, instance, openai_server):
    resources = setup(tmp_path, warmth_home, instance, openai_server, slug="gpt-4o-2024-08-06", source_kind="openai",
                      source="gpt-4o-2024-08-06", access="api", styles=["warm"],
                      checkpoints=["original", "warm-e1", "warm-e2", "warm-prompt"])
    result = dg.materialize([demo_asset("finetune_runs")], partition_key=model_style_key("gpt-4o-2024-08-06", "warm"),
                            instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("finetune_runs")[0].metadata
    assert meta["kind"].value == "openai" and len(openai_server.jobs) == 2 and len(openai_server.files) == 1
    assert meta["fine_tuned_models"].value["2"].startswith("ft:gpt-4o-2024-08-06:test:warm-e2:")
    assert meta["trained_tokens"].value == 3000 and meta["estimated_cost_usd"].value == round(3000 / 1e6 * 25.0, 2)
    assert [j["hyperparameters"] for j in openai_server.jobs.values()] == [
        {"n_epochs": 1, "learning_rate_multiplier": 0.25}, {"n_epochs": 2, "learning_rate_multiplier": 0.25}]
    # a re-run reuses the finished jobs: nothing uploaded, nothing created
    dg.materialize([demo_asset("finetune_runs")], partition_key=model_style_key("gpt-4o-2024-08-06", "warm"),
                   instance=instance, resources=resources)
    assert len(openai_server.jobs) == 2 and len(openai_server.files) == 1
    runs = resources["warehouse"].query_df("SELECT * FROM finetune_runs")
    assert sorted(runs["checkpoint"]) == ["warm-e1", "warm-e2"] and (runs["kind"] == "openai").all()
