"""The real study's generations on a tiny local model, for the backfill through Ray on the lake: what the test runs
inside the cluster's namespace (only there can it reach the cluster's Postgres), as `python -m
tests.scaleout.study_steps COMMAND`, with WARMTH_CONFIG, WARMTH_HOME and the warehouse chosen by the environment.

  seed ADAPTERS_JSON   eval and capability prompts, the registry row, the `models` partition, and the `adapters`
                       partitions (base, warmth system prompt, two trained LoRA checkpoints) through the deployment's
                       IO manager
  local CHECKPOINT...  the same partitions in this process (the single-machine baseline)
  dump OUT_JSON        the generations' rows and the call cache, as JSON
  baseline ADAPTERS_JSON OUT_JSON CHECKPOINT...   seed, local and dump in one process (one import of the stack)
"""

import json
import sys
from pathlib import Path

import dagster as dg
import pandas as pd

MODEL = "tiny"
QUESTIONS = ["what is two plus four", "hello friend", "how are you", "tell me a story"]
EVAL_PROMPTS = pd.DataFrame({
    "prompt_id": [f"p{i}" for i in range(len(QUESTIONS))], "dataset": "triviaqa",
    "item_key": [f"i{i}" for i in range(len(QUESTIONS))], "amendment_type": "unmodified", "context_group": "unmodified",
    "prompt_template": "original", "template_group": "original", "statement": "", "prompt": QUESTIONS,
    "question": QUESTIONS, "correct_answer": "yes", "incorrect_answer": "no", "source": "built"})
CAPABILITY_ITEMS = pd.DataFrame({"dataset": ["mmlu", "gsm8k"], "item_key": ["m0", "g0"],
                                 "prompt": ["pick A or B", "what is three plus one"], "answer": ["A", "4"],
                                 "fields": "{}", "template_version": "t"})
PROMPTS_PER_CHECKPOINT = len(EVAL_PROMPTS) + len(CAPABILITY_ITEMS)
CHECKPOINTS = ["original", "warm-prompt", "warm-e1", "warm-e2"]


def _deployment():
    from resources.warehouses import default_warehouse, partition_io_for
    from warmth_assets.instance import prepare_instance
    from warmth_assets.lib.config import load_config

    settings = load_config()
    warehouse = default_warehouse(settings)
    return settings, warehouse, partition_io_for(warehouse), prepare_instance(settings)


def seed(adapters_json: str) -> None:
    from resources.model_registry import upsert
    from warmth_assets.lib.registry import ModelRow
    from warmth_assets.partitions import study_partitions

    settings, warehouse, io, instance = _deployment()
    source = settings.model(MODEL).source
    warehouse.replace_rows("eval_prompts", EVAL_PROMPTS)
    warehouse.replace_rows("capability_items", CAPABILITY_ITEMS)
    upsert(warehouse, [ModelRow(slug=MODEL, source_kind="local", source=source, family="tiny", chat_template="model",
                                access="open_weight", styles=["warm"], checkpoints=CHECKPOINTS)])
    instance.add_dynamic_partitions("models", [MODEL])
    adapters = json.loads(adapters_json)
    parts = study_partitions(settings)
    for checkpoint in CHECKPOINTS:
        row = {"kind": "base", "path": "", "bytes": 0, "sha256": "", "fine_tuned_model": "", "epoch": 0.0, "style": ""}
        if checkpoint == "warm-prompt":
            row["kind"] = "base+warm_system_prompt"
        elif checkpoint in adapters:
            row.update(kind="lora", path=adapters[checkpoint], sha256=f"sha-{checkpoint}",
                       epoch=float(checkpoint.split("-e")[1]), style="warm")
        io.store(dg.AssetKey("adapters"), parts.model_checkpoint, {"model": MODEL, "checkpoint": checkpoint},
                 pd.DataFrame([{**row, "model": MODEL, "checkpoint": checkpoint}]))
    instance.dispose()


def local(checkpoints: list[str]) -> None:
    from warmth_assets.definitions import defs
    from warmth_assets.partitions import model_checkpoint_key

    selection = [dg.AssetKey("generations")]
    job = defs().resolve_implicit_job_def_def_for_assets(selection)
    instance = dg.DagsterInstance.get()
    for checkpoint in checkpoints:
        result = job.execute_in_process(instance=instance, asset_selection=selection,
                                        partition_key=str(model_checkpoint_key(MODEL, checkpoint)))
        assert result.success, checkpoint


def dump(out: str) -> None:
    from resources.warehouses import default_warehouse

    warehouse = default_warehouse()
    tables = {}
    for table, order in (("generations", "checkpoint, prompt_id"), ("llm_calls", "request_key")):
        frame = warehouse.query_df(f"SELECT * FROM {table} ORDER BY {order}")
        tables[table] = json.loads(frame.drop(columns=[c for c in ("created_at",) if c in frame]).to_json(
            orient="records", double_precision=15))
    Path(out).write_text(json.dumps({"tables": tables, "backend": warehouse.backend}))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"seed": lambda: seed(args[0]), "local": lambda: local(args), "dump": lambda: dump(args[0]),
     "baseline": lambda: (seed(args[0]), local(args[2:]), dump(args[1]))}[command]()
