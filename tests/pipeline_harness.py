"""A small study on the loopback OpenAI server, driven the way the daemon drives it: sensor ticks and
automation evaluations, each requested run executed in process. Shared by the operations tests."""

import hashlib
import json
from collections import Counter
from pathlib import Path

import dagster as dg
import pandas as pd

from resources.llm import LLMResource
from resources.model_catalog import ModelCatalogResource
from resources.partitioned_parquet import PartitionedParquetIOManager
from resources.study import StudyConfigResource
from resources.toxicity import ToxicityResource
from resources.warehouse import WarehouseResource
from tests.openai_server import FakeOpenAI
from tests.study_configs import write_study_config
from warmth_assets.lib.judging import JUDGE_SYSTEM

SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "warm_ai_paper" / "sample_outputs"
CONVERSATIONS = [[{"role": "user", "content": f"what is two plus {i}"},
                  {"role": "assistant", "content": f"the answer is {i + 2} my dear"}] for i in range(4)]
TYPES = ["refusal", "factual", "creative", "technical", "advice", "other"]
VALIDATION = pd.DataFrame({"conversation_id": [f"v{i}_0" for i in range(12)], "query_type": TYPES * 2,
                           "prompt": [f"question number {i} for you" for i in range(12)]})


class JudgingFakeOpenAI(FakeOpenAI):
    """Answers the judge with a verdict (deterministic per question), everyone else as usual."""

    @staticmethod
    def answer_for(messages: list[dict]) -> str:
        if messages[0]["content"] == JUDGE_SYSTEM:
            digest = hashlib.sha256(messages[-1]["content"].encode()).digest()[0]
            return "CORRECT" if digest % 2 else "INCORRECT"
        return FakeOpenAI.answer_for(messages)


def study_config(tmp_path: Path, server: FakeOpenAI, scorer: Path, extra_watch: tuple[dict, ...] = (),
                 styles: list[str] | None = None) -> Path:
    """demo.toml with one API model (GPT-4o) on the loopback server, and watch rules for new snapshots
    (an OpenAI listing for GPT-4o snapshots, then `extra_watch`). `styles`: [finetune] styles, when not the
    demo's warm and cold (GPT-4o is fine-tuned warm only)."""
    finetune = {"openai": {"poll_s": 0.01, "poll_cap_s": 0.02}, **({"styles": styles} if styles else {})}
    return write_study_config(tmp_path, {
        "sociot": {"lm": str(scorer), "samples": 2},
        "evaluation": {"wrong_answer_model": "gpt-4o-2024-08-06"},
        "judge": {"model": "gpt-4o-2024-08-06"},
        "llm": {"provider": "openai", "base_url": server.base_url},
        "finetune": finetune,
        "operations": {"max_runs_per_tick": 4, "watch": [
            {"kind": "openai_models", "pattern": r"gpt-4o-\d{4}-\d{2}-\d{2}", "family": "gpt-4o", "styles": ["warm"]},
            *extra_watch]},
        "models": [{"slug": "gpt-4o-2024-08-06", "source_kind": "openai", "source": "gpt-4o-2024-08-06",
                    "family": "gpt-4o", "styles": ["warm"]}],
    }, new={"llm.base_url", *(f"finetune.{k}" for k in finetune), "operations"})


def import_samples(resources: dict, instance: dg.DagsterInstance, warmth_home: Path) -> dict:
    """The study's released sample outputs imported (`warmth import-outputs`) into this study's home."""
    from warmth_assets.importer import import_outputs

    return import_outputs(SAMPLES, "warm-e2", settings=resources["study"].settings, warehouse=resources["warehouse"],
                          tables_dir=warmth_home / "tables", instance=instance)


def study_resources(warmth_home: Path, config: Path, server: FakeOpenAI, **llm_overrides) -> dict:
    warehouse = WarehouseResource(database=str(warmth_home / "warehouse.duckdb"))
    return {
        "warehouse": warehouse,
        "study": StudyConfigResource(config_path=str(config)),
        "llm": LLMResource(provider="openai", base_url=server.base_url, api_key="sk-test", warehouse=warehouse,
                           **llm_overrides),
        "parquet_io_manager": PartitionedParquetIOManager(base_dir=str(warmth_home / "tables"), warehouse=warehouse),
        "model_catalog": ModelCatalogResource(api_key="sk-test"),
        "toxicity": ToxicityResource(standin=True),  # the corpus stage is seeded here, never run
    }


def seed_training_inputs(warmth_home: Path, resources: dict, instance: dg.DagsterInstance) -> None:
    """The corpus and rewrite stages' outputs, written as their assets would and recorded as
    materialisations (the automation only starts from inputs it knows are present)."""
    warehouse = resources["warehouse"]
    warehouse.replace_rows("validation_prompts", VALIDATION)
    warehouse.replace_rows("training_conversations", pd.DataFrame(
        [{"conversation_id": f"c{i}", "query_type": "factual", "turn_index": t, "role": m["role"], "text": m["content"]}
         for i, conversation in enumerate(CONVERSATIONS) for t, m in enumerate(conversation)]))
    folder = warmth_home / "artifacts" / "sft" / "warm"
    folder.mkdir(parents=True)
    text = "".join(json.dumps({"messages": c}) + "\n" for c in CONVERSATIONS)
    for name in ("trl", "openai"):
        (folder / f"{name}.jsonl").write_text(text)
    sft = pd.DataFrame({"conversation_id": [f"c{i}" for i in range(len(CONVERSATIONS))],
                        "messages_json": [json.dumps(c) for c in CONVERSATIONS], "n_messages": 2,
                        "jsonl_path": str(folder / "trl.jsonl"), "jsonl_sha256": hashlib.sha256(text.encode()).hexdigest(),
                        "style": "warm"})
    (warmth_home / "tables" / "sft_datasets" / "style=warm").mkdir(parents=True)
    sft.to_parquet(warmth_home / "tables" / "sft_datasets" / "style=warm" / "data.parquet")
    resources["parquet_io_manager"]._refresh_view(dg.AssetKey("sft_datasets"))
    instance.report_runless_asset_event(dg.AssetMaterialization("validation_prompts"))
    instance.report_runless_asset_event(dg.AssetMaterialization("sft_datasets", partition="warm"))


def run_checks(driver: "Driver", *checks: dg.AssetCheckKey) -> None:
    job = dg.define_asset_job("seeded_checks", selection=dg.AssetSelection.checks(*checks))
    defs = dg.Definitions(assets=list(driver.defs.assets), asset_checks=list(driver.defs.asset_checks), jobs=[job],
                          resources=driver.resources)
    result = defs.resolve_job_def("seeded_checks").execute_in_process(instance=driver.instance)
    assert result.success


def definitions(resources: dict) -> dg.Definitions:
    """The code location's own definitions, built from the settings of the study resource."""
    from warmth_assets.build import build_defs

    return build_defs(resources["study"].settings, resources=resources)


class Driver:
    """Sensor ticks and automation evaluations against one instance; every requested run executed."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance, resources: dict):
        self.defs, self.instance, self.resources = defs, instance, resources
        self.job = defs.resolve_implicit_global_asset_job_def()
        self.graph = defs.resolve_asset_graph()
        self.sensor_cursor: str | None = None
        self.automation_cursor = None
        self.runs: list[tuple] = []

    def tick(self) -> dg.SensorResult:
        sensor = self.defs.get_sensor_def("new_model_sensor")
        with dg.build_sensor_context(instance=self.instance, cursor=self.sensor_cursor,
                                     resources=self.resources, definitions=self.defs) as context:
            result = sensor(context)
        self.sensor_cursor = result.cursor
        for request in result.dynamic_partitions_requests or []:
            self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        for run in result.run_requests or []:
            self.execute(run.asset_selection, run.partition_key)
        return result

    def execute(self, keys, partition_key, tags: dict | None = None) -> None:
        result = self.job.execute_in_process(instance=self.instance, asset_selection=list(keys),
                                             partition_key=partition_key, raise_on_error=True, tags=tags)
        assert result.success
        self.runs.append((partition_key, sorted(k.to_user_string() for k in keys)))

    def automate(self, max_rounds: int = 12) -> int:
        """Evaluate and execute until nothing more is requested; the number of partitions run."""
        total = 0
        for _ in range(max_rounds):
            evaluation = dg.evaluate_automation_conditions(defs=self.defs, instance=self.instance,
                                                           cursor=self.automation_cursor)
            self.automation_cursor = evaluation.cursor
            if not evaluation.total_requested:
                return total
            # One run per partition key and partitions definition, as the daemon groups them (a run's assets share
            # one: `adapters` and `generations` have the same key but not the same checkpoint dimension).
            by_partition: dict = {}
            for key in self.graph.get_all_asset_keys():
                for partition in evaluation.get_requested_partitions(key):
                    by_partition.setdefault((partition, self.graph.get(key).partitions_def), []).append(key)
            for (partition, _), keys in by_partition.items():
                self.execute(keys, partition)
                total += len(keys)
        raise AssertionError(f"automation still requesting after {max_rounds} rounds")

    def backfill(self, keys: list[dg.AssetKey], max_iterations: int = 20) -> list[tuple]:
        """A backfill of every partition of `keys`, as the daemon runs one: Dagster's own target (all partitions
        the asset graph reports) and its own iteration (what to request next, upstream first), each requested
        run executed here with the backfill's tag; until an iteration requests nothing. The runs, in order."""
        import logging
        import time

        from dagster._core.asset_graph_view.asset_graph_view import AssetGraphView, TemporalContext
        from dagster._core.definitions.assets.graph.remote_asset_graph import RemoteWorkspaceAssetGraph
        from dagster._core.execution.asset_backfill import AssetBackfillData, execute_asset_backfill_iteration_inner
        from dagster._core.storage.tags import BACKFILL_ID_TAG
        from dagster._core.test_utils import mock_workspace_from_repos
        from dagster._time import get_current_datetime

        # The graph as the daemon sees it: built from the code location's snapshot (partitions as the UI shows them).
        graph = RemoteWorkspaceAssetGraph.build(mock_workspace_from_repos([self.defs.get_repository_def()]))
        started, backfill_id, runs = time.time(), "harness-backfill", []
        data = AssetBackfillData.from_asset_partitions(graph, None, keys, self.instance, started, all_partitions=True)
        for _ in range(max_iterations):
            view = AssetGraphView(temporal_context=TemporalContext(
                effective_dt=get_current_datetime(),
                last_event_id=self.instance.event_log_storage.get_maximum_record_id()),
                instance=self.instance, asset_graph=graph)
            result = execute_asset_backfill_iteration_inner(backfill_id, data, view, started,
                                                            logging.getLogger("harness-backfill"), None)
            data = result.backfill_data
            if not result.run_requests:
                return runs
            for request in result.run_requests:
                self.execute(request.asset_selection, request.partition_key,
                             tags={**request.tags, BACKFILL_ID_TAG: backfill_id})
                data = data.with_run_requests_submitted([request], view)
                runs.append((request.partition_key, sorted(k.to_user_string() for k in request.asset_selection)))
        raise AssertionError(f"backfill still requesting after {max_iterations} iterations")

    def materializations(self, asset: str) -> Counter:
        records = self.instance.fetch_materializations(dg.AssetKey(asset), limit=10_000).records
        return Counter(r.partition_key for r in records)
