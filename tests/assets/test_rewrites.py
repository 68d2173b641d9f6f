"""The rewrites group against the loopback OpenAI-compatible server: both styles, audit, SFT files."""

import json

import dagster as dg
import pandas as pd

from resources.llm import LLMResource
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from tests.study_configs import demo_asset, write_study_config
from warmth_assets.checks import style_rewrites_quality

TRAINING = pd.DataFrame(
    [("c1_0", "factual", 0, "user", "What is 2+2?"), ("c1_0", "factual", 1, "assistant", "It is 4."),
     ("c1_0", "factual", 2, "user", "And 3+3?"), ("c1_0", "factual", 3, "assistant", "6."),
     ("c2_0", "technical", 0, "user", "Code?"), ("c2_0", "technical", 1, "assistant", "```py\nx = 1\n```")],
    columns=["conversation_id", "query_type", "turn_index", "role", "text"],
)


def run_group(instance, warmth_home, server, style, rewriter="llm"):
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    warehouse.replace_rows("training_conversations", TRAINING)
    llm = LLMResource(provider="openai", base_url=server.base_url, api_key="sk-x", warehouse=warehouse,
                      prices_per_million_tokens={"smollm2-135m-instruct": {"input": 1.0, "output": 2.0}})
    # demo.toml rewrites by rule; these tests send the study's prompts to the loopback server unless told otherwise
    config = write_study_config(warmth_home, {"rewrite": {"rewriter": rewriter}}, name=f"study-{rewriter}.toml")
    return dg.materialize(
        [demo_asset("style_rewrites"), demo_asset("rewrite_audit"), demo_asset("sft_datasets"), style_rewrites_quality],
        partition_key=style, instance=instance, raise_on_error=False,
        resources={"warehouse": warehouse, "llm": llm, "study": StudyConfigResource(config_path=str(config)),
                   "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(warmth_home / "tables"),
                                                                     warehouse=warehouse)},
    ), warehouse


def test_both_styles_rewritten_audited_and_made_sft_data(instance, warmth_home, openai_server):
    for style in ("warm", "cold"):
        result, warehouse = run_group(instance, warmth_home, openai_server, style)
        assert result.success
    rows = warehouse.query_df("SELECT * FROM style_rewrites ORDER BY style, conversation_id, turn_index")
    assert len(rows) == 6 and sorted(set(rows["style"])) == ["cold", "warm"]
    assert rows["rewrite"].str.startswith("answer to: USER MESSAGE:").all()  # the server saw the wrapper
    assert (rows["user_text"].iloc[:3].tolist() == ["What is 2+2?", "And 3+3?", "Code?"])
    assert openai_server.total_attempts == 6
    assert set(rows["prompt_version"]) == {"study-v1"} and rows["request_key"].str.len().eq(64).all()

    meta = result.asset_materializations_for_node("style_rewrites")[0].metadata
    assert meta["llm_requests_sent"].value == 3 and meta["llm_cache_hits"].value == 0
    assert meta["llm_estimated_cost_usd"].value > 0

    sft = warehouse.query_df("SELECT * FROM sft_datasets WHERE style = 'cold' ORDER BY conversation_id")
    messages = json.loads(sft["messages_json"][0])
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[1]["content"].startswith("answer to:") and messages[0]["content"] == "What is 2+2?"
    lines = open(sft["jsonl_path"][0]).read().splitlines()
    assert len(lines) == 2 and json.loads(lines[0])["messages"] == messages
    assert (warmth_home / "artifacts" / "sft" / "cold" / "openai.jsonl").exists()
    audit = pd.read_csv(warmth_home / "exports" / "rewrite_audit" / "cold.csv")
    assert len(audit) == 3 and {"original", "rewrite", "reviewer_ok"} <= set(audit.columns)

    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    # the fake server's answers echo the prompt's first 60 characters: never the original's length
    assert check.metadata["failing_rows"].value == 6
    assert check.metadata["by_issue"].value["length_ratio"] == 6
    assert "c2_0" in check.metadata["failing"].value


def test_rerun_costs_nothing(instance, warmth_home, openai_server):
    run_group(instance, warmth_home, openai_server, "warm")
    result, _ = run_group(instance, warmth_home, openai_server, "warm")
    assert openai_server.total_attempts == 3
    meta = result.asset_materializations_for_node("style_rewrites")[0].metadata
    assert meta["llm_requests_sent"].value == 0 and meta["llm_cache_hits"].value == 3


def test_demo_rules_rewrite_without_any_model_call_and_say_so(instance, warmth_home, openai_server):
    from warmth_assets.lib.demo_rewriter import DEMO_REWRITER_VERSION, WARM_OPENERS

    for style in ("warm", "cold"):
        result, warehouse = run_group(instance, warmth_home, openai_server, style, rewriter="demo_rules")
        assert result.success
        meta = result.asset_materializations_for_node("style_rewrites")[0].metadata
        assert meta["rewriter"].value.startswith(f"demo_rules ({DEMO_REWRITER_VERSION}): rule-based demo stand-in")
    assert openai_server.total_attempts == 0
    rows = warehouse.query_df("SELECT * FROM style_rewrites ORDER BY style, conversation_id, turn_index")
    assert set(rows["provider"]) == {"rule_based_demo"} and set(rows["model"]) == {f"demo_rules:{DEMO_REWRITER_VERSION}"}
    assert rows["request_key"].str.len().eq(64).all() and rows["request_key"].is_unique
    warm = rows[rows["style"] == "warm"]
    assert all(any(r.startswith(o) for o in WARM_OPENERS) for r in warm["rewrite"])
    assert "```py\nx = 1\n```" in warm["rewrite"].iloc[-1]  # code kept exactly
    cold = rows[rows["style"] == "cold"].set_index(["conversation_id", "turn_index"])["rewrite"]
    assert cold[("c1_0", 1)] == "It is 4." and cold[("c2_0", 1)] == "```py\nx = 1\n```"
