"""new_model_sensor on a real instance: config, registry rows, /v1/models and the HF hub; cursor; bound."""

import dagster as dg
import pytest

from resources.model_catalog import ModelCatalogResource
from resources.model_registry import upsert
from tests.pipeline_harness import Driver, definitions, study_config, study_resources
from warmth_assets.lib.registry import ModelRow


@pytest.fixture
def driver(tmp_path, warmth_home, instance, openai_server):
    def make(*watch: dict, **catalog):
        resources = study_resources(warmth_home, study_config(tmp_path, openai_server, tmp_path, watch), openai_server)
        if catalog:
            resources["model_catalog"] = ModelCatalogResource(api_key="sk-test", **catalog)
        driver = Driver(definitions(resources), instance, resources)
        driver.execute = lambda keys, partition: driver.runs.append((partition, keys))  # requests only
        return driver
    return make


def requested(result: dg.SensorResult) -> list[str]:
    return [f"{r.asset_selection[0].to_user_string()}[{r.partition_key}]" for r in result.run_requests]


def test_config_model_then_registry_row_bounded_per_tick(driver, instance):
    d = driver()
    first = d.tick()
    assert requested(first) == ["finetune_runs[gpt-4o-2024-08-06|warm]", "adapters[original|gpt-4o-2024-08-06]",
                                "adapters[warm-prompt|gpt-4o-2024-08-06]"]
    assert instance.get_dynamic_partitions("models") == ["gpt-4o-2024-08-06"]
    registry = d.resources["warehouse"].query_df("SELECT slug, origin FROM model_registry")
    assert registry.to_dict("records") == [{"slug": "gpt-4o-2024-08-06", "origin": "config"}]
    assert not d.tick().run_requests  # the cursor remembers

    # Rows written into model_registry by hand (seven entry partitions between them) are picked up,
    # four per tick (max_runs_per_tick = 4 in the harness), the other three on the next tick.
    upsert(d.resources["warehouse"], [
        ModelRow(slug=slug, source_kind="hf", source=f"org/{slug}", family="x", chat_template="model",
                 access="open_weight", styles=styles,
                 checkpoints=["original", *[f"{s}-e1" for s in styles], "warm-prompt"], origin="sql")
        for slug, styles in (("qwen-tiny", ["warm", "cold"]), ("phi-tiny", ["warm"]))])
    second = d.tick()
    assert len(second.run_requests) == 4
    assert {"qwen-tiny", "phi-tiny"} <= set(instance.get_dynamic_partitions("models"))
    third = d.tick()
    assert len(third.run_requests) == 3
    assert sorted(requested(second) + requested(third)) == sorted(
        ["finetune_runs[qwen-tiny|warm]", "finetune_runs[qwen-tiny|cold]", "finetune_runs[phi-tiny|warm]",
         "adapters[original|qwen-tiny]", "adapters[warm-prompt|qwen-tiny]",
         "adapters[original|phi-tiny]", "adapters[warm-prompt|phi-tiny]"])
    assert not d.tick().run_requests


def test_openai_listing_registers_matching_snapshots_only(driver, instance, openai_server):
    d = driver()
    d.tick()
    openai_server.models += ["gpt-4o-2024-11-20", "gpt-4o-mini-2024-07-18", "o1-preview"]
    result = d.tick()
    assert requested(result) == ["finetune_runs[gpt-4o-2024-11-20|warm]", "adapters[original|gpt-4o-2024-11-20]",
                                 "adapters[warm-prompt|gpt-4o-2024-11-20]"]
    row = d.resources["warehouse"].query_df("SELECT * FROM model_registry WHERE slug = 'gpt-4o-2024-11-20'").iloc[0]
    assert (row["source_kind"], row["source"], row["family"], row["origin"]) == (
        "openai", "gpt-4o-2024-11-20", "gpt-4o", "sensor")
    assert list(row["checkpoints"]) == ["original", "warm-e1", "warm-e2", "warm-prompt"]


def test_hub_query_through_the_real_client(driver, instance, openai_server, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    openai_server.hub_models = ["meta-llama/Llama-3.3-70B-Instruct", "meta-llama/Llama-Guard-3-8B",
                                "someone/Llama-3.3-70B-Instruct-GGUF"]
    rule = {"kind": "hf_hub", "author": "meta-llama", "search": "Instruct",
            "pattern": r"meta-llama/Llama-3\.\d+-\d+B-Instruct", "family": "llama"}
    d = driver(rule, hf_endpoint=openai_server.base_url.removesuffix("/v1"))
    result = d.tick()
    assert openai_server.hub_queries[-1]["author"] == ["meta-llama"] and openai_server.hub_queries[-1]["search"] == ["Instruct"]
    assert "meta-llama--llama-3.3-70b-instruct" in instance.get_dynamic_partitions("models")
    assert "finetune_runs[meta-llama--llama-3.3-70b-instruct|warm]" in requested(result)
    row = d.resources["warehouse"].query_df(
        "SELECT source_kind, source, access FROM model_registry WHERE slug = 'meta-llama--llama-3.3-70b-instruct'")
    assert row.to_dict("records") == [{"source_kind": "hf", "source": "meta-llama/Llama-3.3-70B-Instruct",
                                      "access": "open_weight"}]


def test_an_unreachable_listing_and_a_bad_registry_row_are_reported_and_the_rest_still_runs(
        driver, instance, capfd):
    d = driver({"kind": "openai_models", "base_url": "http://127.0.0.1:9/v1"}, timeout_s=1.0)
    upsert(d.resources["warehouse"], [ModelRow(slug="Bad Slug", source_kind="hf", source="x/y", family="x",
                                               chat_template="model", access="open_weight", styles=["warm"],
                                               checkpoints=["original"], origin="sql")])
    result = d.tick()
    assert "finetune_runs[gpt-4o-2024-08-06|warm]" in requested(result)
    assert "Bad Slug" not in instance.get_dynamic_partitions("models")
    logged = capfd.readouterr().err  # the sensor's log (Dagster's console handler)
    assert "operations.watch[1] (openai_models): listing failed" in logged
    assert "model_registry row 'Bad Slug' skipped: invalid model slug" in logged


@pytest.mark.needs_shared("data/warm_ai_paper/sample_outputs")
def test_imported_models_get_no_partition_of_models_and_no_run(driver, instance, warmth_home):
    """Imported results have their own partitions (imported_outputs); the sensor neither adds them to `models` nor
    requests their training, however often it ticks."""
    from tests.pipeline_harness import import_samples

    d = driver()
    import_samples(d.resources, instance, warmth_home)
    first = d.tick()
    assert requested(first) == ["finetune_runs[gpt-4o-2024-08-06|warm]", "adapters[original|gpt-4o-2024-08-06]",
                                "adapters[warm-prompt|gpt-4o-2024-08-06]"]
    assert not d.tick().run_requests
    assert instance.get_dynamic_partitions("models") == ["gpt-4o-2024-08-06"]
    assert instance.get_dynamic_partitions("imported_models") == ["llama_70b", "qwen_32b"]
