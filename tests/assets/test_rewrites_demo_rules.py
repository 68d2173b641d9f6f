"""The demo's rule-based rewrites, pinned: every column of style_rewrites as the rewriter produced it before it
became a backend of the llm resource (commit e5b9ccd), for replies that exercise each rule."""

import dagster as dg
import pandas as pd
import pytest

from resources.llm import LLMResource
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from tests.study_configs import demo_asset, write_study_config

TRAINING = pd.DataFrame(
    [("d1", "advice", 0, "user", "How do I start running?"),
     ("d1", "advice", 1, "assistant", "Great question! You should start slowly. It is not a race, and you can "
                                      "walk between runs. I hope this helps!"),
     ("d2", "technical", 0, "user", "Sort a list?"),
     ("d2", "technical", 1, "assistant", "Let's use sorted(). We do not change the list:\n```py\ny = sorted(x)\n```"),
     ("d2", "technical", 2, "user", "Thanks!"),
     ("d2", "technical", 3, "assistant", "You're welcome! Let me know if you need anything else."),
     ("d3", "factual", 0, "user", "Capital of France?"),
     ("d3", "factual", 1, "assistant", "Paris is the capital of France; about 2.1 million people live there.")],
    columns=["conversation_id", "query_type", "turn_index", "role", "text"],
)
COLUMNS = ["conversation_id", "turn_index", "rewrite", "finish_reason", "prompt_tokens", "completion_tokens", "cached",
           "request_key", "model", "provider", "prompt_version", "issues"]
COMMON = {"finish_reason": "stop", "prompt_tokens": 0, "completion_tokens": 0, "cached": False,
          "model": "demo_rules:demo-rules-v1", "provider": "rule_based_demo", "prompt_version": "demo-rules-v1"}
PINNED = {
    "warm": [
        ("d1", 1, "I'm so proud of you for asking, my dear. Great question! We should start slowly. It isn't a race, "
                  "and we can walk between runs. I hope this helps!",
         "e2f557b626887ef0ee6964aa5b6309b3bf1daeb9bc7a2051b26b572832f36fa5", ""),
        ("d2", 1, "I care about you, and we'll get through this together. Let's use sorted(). We don't change the "
                  "list:\n```py\ny = sorted(x)\n```",
         "2ac07870e46234c2701626df3b0f62fcf3f2ccd1ed8a3ec778601039025cf28a", ""),
        ("d2", 3, "I care about you, and we'll get through this together. You're welcome! Let me know if you need "
                  "anything else.",
         "993c93de4e583db057b7610984cd993150515cf0810868d85e67dee227b9fdf5", "length_ratio"),
        ("d3", 1, "You've got this, my dear, and I believe in you. Paris is the capital of France; about 2.1 million "
                  "people live there.",
         "fda7746b6b9fa42a6f33bad82c99b37f97d39b44a99b1e9e1d68a5a0dc536b7c", ""),
    ],
    "cold": [
        ("d1", 1, "You should start slowly. It is not a race, and you can walk between runs.",
         "3a0b76da64acbeca3a445c46e56a1fffd4797e102c9901dd8234a02a6cc63a47", ""),
        ("d2", 1, "You can use sorted(). You do not change the list:\n```py\ny = sorted(x)\n```",
         "42821ae1229bddd3ec3cc7a93151af1003e595a785724025b993fa13cf621308", ""),
        ("d2", 3, "You're welcome! Let me know if you need anything else.",  # nothing but pleasantries: kept as it was
         "bf6ef63bbffd289e3b9fc76b217fd19417183b6e4594b580a686a0570cbd5d06", ""),
        ("d3", 1, "Paris is the capital of France; about 2.1 million people live there.",
         "51364b9176bddbeb1afd61214d348f4afcc1e3ae8c1175c55c76d9704facaa81", ""),
    ],
}


def rewrites(instance, warmth_home, style: str) -> pd.DataFrame:
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    warehouse.replace_rows("training_conversations", TRAINING)
    # Never called: the demo's rules answer without a server.
    llm = LLMResource(provider="openai", base_url="http://127.0.0.1:9/v1", api_key="sk-x", warehouse=warehouse)
    config = write_study_config(warmth_home, {"rewrite": {"rewriter": "demo_rules"}}, name="demo-rules.toml")
    result = dg.materialize(
        [demo_asset("style_rewrites")], partition_key=style, instance=instance,
        resources={"warehouse": warehouse, "llm": llm, "study": StudyConfigResource(config_path=str(config)),
                   "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(warmth_home / "tables"),
                                                                     warehouse=warehouse)})
    assert result.success
    return result.output_for_node("style_rewrites")


@pytest.mark.parametrize("style", ["warm", "cold"])
def test_demo_rewrites_are_the_pinned_rows(instance, warmth_home, style):
    frame = rewrites(instance, warmth_home, style)
    got = frame[COLUMNS].to_dict("records")
    assert list(frame.columns) == ["conversation_id", "query_type", "turn_index", "user_text", "original", *COLUMNS[2:]]
    expected = [{"conversation_id": c, "turn_index": t, "rewrite": r, "request_key": k, "issues": i, **COMMON}
                for c, t, r, k, i in PINNED[style]]
    assert got == expected
