"""The warmth group on a tiny local model with a real LoRA adapter, and an API model on the loopback server."""

import dagster as dg
import numpy as np
import pandas as pd
import pytest
from scipy import stats


from resources.llm import LLMResource
from resources.local_lm import LocalLMResource
from resources.model_registry import upsert
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from tests.study_configs import demo_asset, write_study_config
from warmth_assets.assets import warmth
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig
from warmth_assets.lib.config import LoraSettings
from warmth_assets.lib.lora_training import train_lora
from warmth_assets.lib.registry import ModelRow
from warmth_assets.partitions import model_checkpoint_key

PROMPTS = pd.DataFrame({"conversation_id": ["v1_0", "v2_0", "v3_0"], "query_type": ["factual", "advice", "other"],
                        "prompt": ["what is two plus four", "hello friend", "how are you"]})


def trained_adapter(tiny_chat_model, tmp_path) -> str:
    conversations = [[{"role": "user", "content": "hello friend"},
                      {"role": "assistant", "content": "my dear friend i am so fine thanks"}]] * 16
    lora = LoraSettings(epochs=1, r=8, alpha=16, dropout=0.0, learning_rate=0.02, max_length=64,
                        effective_batch_size=2, per_device_batch_size=2)
    return train_lora(lora, conversations, tmp_path / "run", "d", "cpu", pretrained=str(tiny_chat_model),
                      style="warm", checkpoint_epochs=(1,), seed=1, log=lambda m: None).adapters["warm-e1"]


@pytest.mark.parametrize("mode", ["peft", "merged"])  # peft first: merged then starts from a base peft wrapped
def test_adapters_are_swapped_on_one_base_and_switched_off_for_it(tiny_chat_model, tmp_path, mode):
    adapter = trained_adapter(tiny_chat_model, tmp_path)
    request = [ChatRequest.build([{"role": "user", "content": "hello friend"}], model="tiny",
                                 config=GenerateConfig(max_tokens=8))]
    base = LocalLMResource(source_kind="local", source=str(tiny_chat_model), adapters=mode)
    adapted = LocalLMResource(source_kind="local", source=str(tiny_chat_model), adapter_path=adapter,
                              adapter_sha256=f"x1-{mode}", adapters=mode)
    before = base.generate(request)[0].text
    with_adapter = adapted.generate(request)[0].text
    after = base.generate(request)[0].text
    assert with_adapter != before and after == before
    assert with_adapter.split()[:3] == ["my", "dear", "friend"]  # it learnt its one reply


def test_a_merged_adapter_scores_as_peft_applies_it_and_leaves_the_base_as_it_was(tiny_chat_model, tmp_path):
    """[generation] adapters = merged (peft's merge_and_unload on a copy of the base) against peft's own LoRA layers:
    the same log-likelihoods to float32 rounding, and the base's answers unchanged after either."""
    from resources.local_lm import load_model

    adapter = trained_adapter(tiny_chat_model, tmp_path)
    requests = [ChatRequest.build([{"role": "user", "content": text}], model="tiny", config=GenerateConfig())
                for text in ("hello friend", "what is two plus four", "tell me a story")]
    options = [("my dear friend", "six", "once upon a time")] * len(requests)
    model, _ = load_model("local", str(tiny_chat_model), dtype="float32")
    weights = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    scored = {}
    for mode in ("merged", "peft", "merged"):  # merged again after peft wrapped the base
        lm = LocalLMResource(source_kind="local", source=str(tiny_chat_model), adapter_path=adapter,
                             adapter_sha256=f"x2-{mode}", adapters=mode, dtype="float32")
        scored.setdefault(mode, []).append(np.array([totals for totals, _, _ in lm.choice_logprobs(requests, options)]))
    base = LocalLMResource(source_kind="local", source=str(tiny_chat_model), dtype="float32")
    unadapted = np.array([totals for totals, _, _ in base.choice_logprobs(requests, options)])
    np.testing.assert_allclose(scored["merged"][0], scored["peft"][0], rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(scored["merged"][1], scored["merged"][0], rtol=1e-5, atol=1e-5)
    assert np.abs(scored["merged"][0] - unadapted).max() > 0.5  # the adapter moves the scores
    # Merging never wrote into the base: its own weights, bit for bit, under peft's layers if peft wrapped it.
    now = {name.replace("base_model.model.", "").replace(".base_layer", ""): tensor
           for name, tensor in model.state_dict().items() if "lora_" not in name}
    assert set(now) == set(weights) and all(now[name].equal(weights[name]) for name in weights)


def setup(warmth_home, instance, tmp_path, registry: dict, adapters_rows: dict, llm_server=None, scoring_lm=""):
    config = write_study_config(tmp_path, {"sociot": {"lm": str(scoring_lm)}})
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    warehouse.replace_rows("validation_prompts", PROMPTS)
    upsert(warehouse, [ModelRow(slug=registry["slug"], source_kind=registry["source_kind"], source=registry["source"],
                                family="t", chat_template="model", access=registry["access"], styles=["warm"],
                                checkpoints=list(adapters_rows))])
    instance.add_dynamic_partitions("models", [registry["slug"]])
    io = PartitionedParquetIOManager(base_dir=str(warmth_home / "tables"), warehouse=warehouse)
    for checkpoint, row in adapters_rows.items():
        folder = warmth_home / "tables" / "adapters" / f"checkpoint={checkpoint}" / f"model={registry['slug']}"
        folder.mkdir(parents=True)
        pd.DataFrame([{"kind": "base", "path": "", "bytes": 0, "sha256": "", "fine_tuned_model": "", "epoch": 0.0,
                       "style": "", **row, "model": registry["slug"], "checkpoint": checkpoint}]).to_parquet(
            folder / "data.parquet")
    llm = LLMResource(provider="openai", base_url=llm_server.base_url if llm_server else None, api_key="sk-x",
                      warehouse=warehouse)
    return {"warehouse": warehouse, "study": StudyConfigResource(config_path=str(config)), "llm": llm,
            "parquet_io_manager": io}


def test_local_checkpoints_generate_score_and_trace(tmp_path, warmth_home, instance, tiny_chat_model, tiny_gpt2):
    make_gpt2, gpt2_tok = tiny_gpt2
    scorer = tmp_path / "scorer"
    make_gpt2(0.1).save_pretrained(scorer)
    gpt2_tok.save_pretrained(scorer)
    adapter = trained_adapter(tiny_chat_model, tmp_path)
    resources = setup(warmth_home, instance, tmp_path, {"slug": "tiny", "source_kind": "local",
                                                        "source": str(tiny_chat_model), "access": "open_weight"},
                      {"original": {}, "warm-e1": {"kind": "lora", "path": adapter, "sha256": "abc", "epoch": 1.0,
                                                   "style": "warm"}, "warm-prompt": {"kind": "base+warm_system_prompt"}},
                      scoring_lm=str(scorer))
    assets = [demo_asset("validation_generations"), demo_asset("warmth_scores")]
    for checkpoint in ("original", "warm-e1", "warm-prompt"):
        result = dg.materialize([*assets, demo_asset("adapters").to_source_asset()], instance=instance,
                                resources=resources, partition_key=model_checkpoint_key("tiny", checkpoint))
        meta = result.asset_materializations_for_node("warmth_scores")[0].metadata
        assert meta["responses"].value == 3 and meta["dropout_active"].value is True
        assert meta["sem_warmth"].value >= 0 and meta["scoring_lm"].value == str(scorer)
        assert meta["metric"].value == f"SocioT (reference, scorer {scorer})"
    generations = resources["warehouse"].query_df("SELECT * FROM validation_generations ORDER BY checkpoint, conversation_id")
    by_checkpoint = generations.groupby("checkpoint")["response"].apply(list)
    assert by_checkpoint["warm-e1"] != by_checkpoint["original"]
    assert generations.loc[generations["checkpoint"] == "warm-e1", "generator"].iloc[0].endswith("@abc")
    scores = resources["warehouse"].query_df("SELECT * FROM warmth_scores")
    assert len(scores) == 9 and (scores["se"] > 0).all() and set(scores["variant"]) == {"reference"}

    # re-running a checkpoint costs nothing: every answer comes from the cache
    result = dg.materialize([demo_asset("validation_generations"), demo_asset("adapters").to_source_asset()], instance=instance,
                            resources=resources, partition_key=model_checkpoint_key("tiny", "warm-e1"))
    rerun = result.asset_materializations_for_node("validation_generations")[0].metadata
    assert rerun["llm_cache_hits"].value == 3
    from resources.pretrained import resolve_dtype  # the run names the precision its in-process model ran in
    assert rerun["precision"].value == resolve_dtype("auto", "cpu")

    result = dg.materialize([warmth.warmth_trajectory], instance=instance, resources=resources)
    meta = result.asset_materializations_for_node("warmth_trajectory")[0].metadata
    assert meta["trajectory"].value.startswith("![Warmth by epoch with 95% CIs](data:image/png;base64,")
    assert meta["trajectory_normalised"].value.startswith(
        f"![Warmth by epoch (global min-max), SocioT (reference, scorer {scorer})]")
    # the band: per checkpoint the mean over the 3 validation prompts and its t-interval, computed here by hand
    lines = [[cell.strip() for cell in line.strip("|").split("|")] for line in meta["band"].value.splitlines()]
    header, rows = lines[0], lines[2:]
    assert header == ["model", "checkpoint", "mean", "low", "high", "n"] and len(rows) == 3
    for row in rows:
        values = scores.loc[scores["checkpoint"] == row[1], "warmth"].to_numpy()
        half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
        assert int(row[5]) == 3
        assert [float(x) for x in row[2:5]] == pytest.approx(
            [values.mean(), values.mean() - half, values.mean() + half], abs=1e-4)
    table = resources["warehouse"].query_df("SELECT * FROM warmth_trajectory")
    assert set(table["style"]) == {"original", "warm", "prompt"} and table["normalised"].between(0, 1).all()


def test_api_checkpoint_answers_under_its_fine_tuned_name(tmp_path, warmth_home, instance, openai_server):
    resources = setup(warmth_home, instance, tmp_path, {"slug": "gpt-4o-2024-08-06", "source_kind": "openai",
                                                        "source": "gpt-4o-2024-08-06", "access": "api"},
                      {"warm-e2": {"kind": "openai", "fine_tuned_model": "ft:gpt-4o-2024-08-06:org:warm:abc",
                                   "style": "warm", "epoch": 2.0}}, llm_server=openai_server)
    dg.materialize([demo_asset("validation_generations"), demo_asset("adapters").to_source_asset()], instance=instance,
                   resources=resources,
                   partition_key=model_checkpoint_key("gpt-4o-2024-08-06", "warm-e2"))
    rows = resources["warehouse"].query_df("SELECT * FROM validation_generations")
    assert set(rows["generator"]) == {"ft:gpt-4o-2024-08-06:org:warm:abc"} and len(rows) == 3
    assert rows["response"].str.startswith("answer to: ").all() and openai_server.total_attempts == 3
