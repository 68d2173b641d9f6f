"""Resources are built from their settings section (`from_settings`), and one built bare (tests, benchmarks) runs
as the study file, dagster_project.toml, says: its values are read from the file's text here, not from the
settings models the resources declare their defaults from."""

import tomllib

from resources.llm import LLMResource
from resources.local_lm import LocalLMResource
from resources.toxicity import ToxicityResource
from resources.warehouse import WarehouseResource
from tests.study_configs import REPO
from warmth_assets.lib.config import (DetoxifySettings, GenerationSettings, LLMSettings, ModelSettings,
                                      OperationsSettings)
from warmth_assets.lib.registry import ModelRow

STUDY = tomllib.loads((REPO / "dagster_project.toml").read_text())


def test_the_llm_resource_takes_its_section_whole(tmp_path):
    llm = LLMSettings(max_concurrency=3, timeout_s=7.5, max_retries=2, batch_min_requests=10, batch_poll_s=5.0,
                      prices_per_million_tokens={"m": {"input": 1.0, "output": 2.0}})
    operations = OperationsSettings(budget_usd=12.0, max_api_concurrency_per_provider=4)
    warehouse = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    built = LLMResource.from_settings(llm, operations, warehouse=warehouse, provider="openai", base_url=None)
    assert (built.max_concurrency, built.timeout_s, built.max_retries, built.batch_min_requests,
            built.batch_poll_s) == (3, 7.5, 2, 10, 5.0)
    assert built.prices_per_million_tokens == {"m": {"input": 1.0, "output": 2.0}}
    assert (built.budget_usd, built.max_concurrency_per_provider) == (12.0, 4)
    assert built.base_url is None and built.endpoint == "https://api.openai.com/v1"


def test_a_bare_llm_resource_runs_as_the_study_file_says(tmp_path):
    bare = LLMResource(warehouse=WarehouseResource(database=str(tmp_path / "w.duckdb")))
    expected = {"provider": "openai", "max_concurrency": 8, "timeout_s": 120, "max_retries": 6, "batch_min_requests": 0}
    assert {name: STUDY["llm"][name] for name in expected} == expected
    assert {name: getattr(bare, name) for name in expected} == expected
    assert "batch_poll_s" not in STUDY["llm"] and bare.batch_poll_s == 30.0
    assert STUDY["operations"]["budget_usd"] == 0 and bare.budget_usd == 0.0
    # Bare on purpose: no prices and no cross-process limit unless the settings give them.
    assert bare.prices_per_million_tokens == {} and bare.max_concurrency_per_provider == 0


def test_the_toxicity_resource_takes_its_section_whole():
    detoxify = DetoxifySettings(variant="unbiased", checkpoint="/ckpt", huggingface_config_path="/hf", standin=True,
                                batch_size=4, max_length=64, threshold=0.3)
    built = ToxicityResource.from_settings(detoxify, device="cpu")
    assert (built.variant, built.checkpoint, built.huggingface_config_path, built.standin, built.batch_size,
            built.max_length, built.device) == ("unbiased", "/ckpt", "/hf", True, 4, 64, "cpu")


def test_a_bare_toxicity_resource_runs_as_the_study_file_says():
    bare = ToxicityResource()
    expected = {"variant": "original", "checkpoint": "", "huggingface_config_path": "", "batch_size": 32,
                "max_length": 512}
    assert {name: STUDY["corpus"]["detoxify"][name] for name in expected} == expected
    assert {name: getattr(bare, name) for name in expected} == expected
    assert "standin" not in STUDY["corpus"]["detoxify"] and bare.standin is False


def test_the_local_lm_resource_takes_a_model_and_generation(tmp_path):
    template = tmp_path / "plain.jinja"
    template.write_text("{{ messages }}")
    model = ModelSettings(slug="s", source_kind="hf", source="org/chat", family="f", chat_template=str(template))
    generation = GenerationSettings(batch_size=5, batch_max_chars=900)
    built = LocalLMResource.from_settings(model, generation, device="cpu", adapter_path="/a", adapter_sha256="abc")
    assert (built.source_kind, built.source, built.chat_template, built.batch_size, built.batch_max_chars,
            built.device, built.adapter_path, built.adapter_sha256) == (
        "hf", "org/chat", str(template), 5, 900, "cpu", "/a", "abc")
    # The cache keys stay those of a resource built field by field.
    by_hand = LocalLMResource(source_kind="hf", source="org/chat", chat_template=str(template), adapter_path="/a",
                              adapter_sha256="abc")
    assert built.identity == by_hand.identity


def test_a_registry_row_gives_the_same_local_lm_resource(tmp_path):
    row = ModelRow(slug="s", source_kind="local", source=str(tmp_path), family="f", chat_template="model",
                   access="open_weight", styles=["warm"], checkpoints=["original"])
    from_row = LocalLMResource.from_settings(row, GenerationSettings())
    from_config = LocalLMResource.from_settings(
        ModelSettings(slug="s", source_kind="local", source=str(tmp_path), family="f"), GenerationSettings())
    assert from_row == from_config and from_row.identity == f"local:{tmp_path}"
    # A row registered before [[models]] had chat_template holds none: the tokenizer's own template.
    old = {"source_kind": "local", "source": str(tmp_path), "chat_template": None}
    assert LocalLMResource.from_settings(old, GenerationSettings()).chat_template == "model"


def test_a_bare_local_lm_resource_runs_as_the_study_file_says():
    bare = LocalLMResource(source_kind="hf", source="org/chat")
    assert STUDY["generation"]["batch_size"] == 16 and bare.batch_size == 16
    assert "batch_max_chars" not in STUDY["generation"] and bare.batch_max_chars == 0  # 0: rows alone cut a batch
    assert all("chat_template" not in model for model in STUDY["models"]) and bare.chat_template == "model"
