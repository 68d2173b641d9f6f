"""The study's own generations backfilled through Ray on the lake, for real: a tiny local model with two trained LoRA
checkpoints, four partitions of `generations` (each one GPU step) started together as four runs of the
real code location (`dagster asset materialize -m warmth_assets.definitions`), with WARMTH_WAREHOUSE=ducklake
(catalog in the cluster's Postgres), WARMTH_EXECUTOR=ray and Dagster's runs and events in that Postgres.

Checked: the GPU steps ran on both worker nodes, never two on one node at once and never more than two at a time;
every step's success is in Postgres; the rows equal, row for row, those of the same partitions run on one machine
with the DuckDB file; every request is in the call cache once. Then eight writers on the two nodes (Ray tasks)
overwrite partitions of one lake table for twenty rounds: nothing lost, nothing duplicated, conflicts retried.

Collected in test_ray_cluster.py, on that module's cluster (each cluster costs a minute or two to start)."""

import json
import subprocess
import sys
from pathlib import Path

from tests.scaleout.conftest import DAGSTER, REPO, WARMTH, _tails, run_in_cluster
from tests.scaleout.study_steps import PROMPTS_PER_CHECKPOINT
from tests.study_configs import write_study_config

PYTHON = sys.executable
CHECKPOINTS = ["original", "warm-prompt", "warm-e1", "warm-e2"]
STEPS = ("generations",)


def _study(home: Path, tiny_chat_model) -> tuple[Path, dict]:
    """The study file (the tiny model, short answers, two GPU steps at a time) and the trained adapters."""
    from warmth_assets.lib.config import LoraSettings
    from warmth_assets.lib.lora_training import train_lora

    conversations = [[{"role": "user", "content": "hello friend"},
                      {"role": "assistant", "content": "my dear friend i am so fine thanks"}]] * 16
    lora = LoraSettings(epochs=2, r=8, alpha=16, dropout=0.0, learning_rate=0.02, max_length=64,
                        effective_batch_size=2, per_device_batch_size=2)
    adapters = train_lora(lora, conversations, home / "run", "d", "cpu", pretrained=str(tiny_chat_model),
                          style="warm", checkpoint_epochs=(1, 2), seed=1, log=lambda m: None).adapters
    config = write_study_config(home, {
        "generation": {"evaluation": {"temperature": 0.8, "max_tokens": 8},
                       "capability": {"temperature": 0.2, "max_tokens": 8}},
        "evaluation": {"checkpoints": "all"},  # warm-e1 too, beside the selected epoch's
        "llm": {"local_model": "tiny"},
        "compute": {"gpu_pool_limit": 2},
        "models": [{"slug": "tiny", "source_kind": "local", "source": str(tiny_chat_model), "family": "tiny",
                    "styles": ["warm"]}],
    }, new={"evaluation.checkpoints"})
    return config, {k: str(v) for k, v in adapters.items()}


def _ok(result: subprocess.CompletedProcess, home: Path) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}\n{_tails(home)}"
    return result


REPORT = """
import json, os
import dagster as dg
from ray.job_submission import JobSubmissionClient
instance = dg.DagsterInstance.get()
steps = []
for run in instance.get_runs():
    times = {}
    for kind in (dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS):
        for record in instance.get_records_for_run(run.run_id, of_type=kind).records:
            entry = record.event_log_entry
            times.setdefault(entry.step_key, {})[kind.value] = entry.timestamp
    for step, t in times.items():
        steps.append({"run": run.run_id, "partition": run.tags.get("dagster/partition"), "step": step,
                      "status": run.status.value, **t})
jobs = [{"run": (j.metadata or {}).get("dagster/run-id"), "step": (j.metadata or {}).get("dagster/op"),
         "node": j.driver_node_id, "metadata": j.metadata, "runtime_env": j.runtime_env} for j in JobSubmissionClient(os.environ["WARMTH_RAY_ADDRESS"]).list_jobs()]
print(json.dumps({"storage": type(instance.event_log_storage).__name__, "steps": steps, "jobs": jobs}))
"""


def test_a_backfill_of_generations_on_the_lake_runs_on_both_nodes_with_the_rows_of_one_machine(
        cluster, tiny_chat_model):
    home, env, _ = cluster
    config, adapters = _study(home, tiny_chat_model)
    lake_env = {**env, "WARMTH_CONFIG": str(config), "WARMTH_WAREHOUSE": "ducklake"}
    # `seed` prepares the instance (pools) as `python -m warmth_assets.instance` does
    _ok(run_in_cluster(lake_env, PYTHON, "-m", "tests.scaleout.study_steps", "seed", json.dumps(adapters)), home)

    runs = [subprocess.Popen([WARMTH, "cluster", "exec", "--", DAGSTER, "asset", "materialize", "-m",
                              "warmth_assets.definitions", "--select", ",".join(STEPS), "--partition",
                              f"{checkpoint}|tiny"], env=lake_env, cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True) for checkpoint in CHECKPOINTS]
    outputs = [run.communicate(timeout=900)[0] for run in runs]
    for run, output in zip(runs, outputs):
        assert run.returncode == 0, f"{output[-4000:]}\n{_tails(home)}"

    report = json.loads(_ok(run_in_cluster(lake_env, PYTHON, "-c", REPORT), home).stdout.strip().splitlines()[-1])
    assert report["storage"] == "PostgresEventLogStorage"
    # This backfill's GPU steps (the cluster ran other runs before; each run also has the partitions_current check).
    steps = [s for s in report["steps"] if s["partition"] and s["step"] in STEPS]
    assert sorted((s["partition"], s["step"]) for s in steps if "STEP_SUCCESS" in s) == sorted(
        (f"{c}|tiny", step) for c in CHECKPOINTS for step in STEPS)  # every step's success, in Postgres
    assert env["WARMTH_PG_PASSWORD"] not in json.dumps(report["jobs"])  # secrets stay out of Ray's job records
    assert all("WARMTH_WAREHOUSE" in (j["runtime_env"] or {}).get("env_vars", {}) for j in report["jobs"]
               if j["run"] in {s["run"] for s in steps})  # ...while the rest of the step's environment travels
    ours = {(s["run"], s["step"]) for s in steps}
    node_of = {(j["run"], j["step"]): j["node"] for j in report["jobs"] if (j["run"], j["step"]) in ours}
    assert len(node_of) == 4, report["jobs"]
    spans = [(node_of[(s["run"], s["step"])], s["STEP_START"], s["STEP_SUCCESS"]) for s in steps]
    assert len({node for node, _, _ in spans}) == 2, "the steps did not use both worker nodes"
    for node in {n for n, _, _ in spans}:  # never two GPU steps on one node at once
        mine = sorted((b, e) for n, b, e in spans if n == node)
        assert all(a_end <= b_begin for (_, a_end), (b_begin, _) in zip(mine, mine[1:])), mine
    events = sorted([(b, 1) for _, b, _ in spans] + [(e, -1) for _, _, e in spans], key=lambda x: (x[0], x[1]))
    running, busiest = 0, 0
    for _, change in events:
        running += change
        busiest = max(busiest, running)
    assert busiest == 2  # four runs started together: two steps ran at once and the others waited for a GPU

    lake_dump = home / "lake.json"
    _ok(run_in_cluster(lake_env, PYTHON, "-m", "tests.scaleout.study_steps", "dump", str(lake_dump)), home)

    # The same partitions on one machine: the DuckDB file, the in-process executor, no cluster.
    single = home / "single"
    (single / "dagster").mkdir(parents=True)
    single_env = {k: v for k, v in env.items() if not k.startswith(("WARMTH_PG_", "WARMTH_RAY", "WARMTH_EXECUTOR"))}
    single_env.update(WARMTH_HOME=str(single), DAGSTER_HOME=str(single / "dagster"), WARMTH_CONFIG=str(config))
    _ok(subprocess.run([PYTHON, "-m", "tests.scaleout.study_steps", "baseline", json.dumps(adapters),
                        str(single / "file.json"), *CHECKPOINTS], env=single_env, cwd=REPO, capture_output=True,
                       text=True, timeout=900), home)

    lake = json.loads(lake_dump.read_text())
    file = json.loads((single / "file.json").read_text())
    assert (lake["backend"], file["backend"]) == ("ducklake", "duckdb")
    rows = 4 * PROMPTS_PER_CHECKPOINT
    assert len(file["tables"]["generations"]) == rows
    assert [_row(r) for r in lake["tables"]["generations"]] == [_row(r) for r in file["tables"]["generations"]]
    calls = [(c["request_key"], c["response_text"]) for c in lake["tables"]["llm_calls"]]
    assert len(calls) == len({k for k, _ in calls}) == rows  # every request once
    assert calls == [(c["request_key"], c["response_text"]) for c in file["tables"]["llm_calls"]]


def _row(record: dict) -> dict:
    """A row with its floats rounded to 12 digits (the same arithmetic on one CPU; JSON keeps 15)."""
    return {k: round(v, 12) if isinstance(v, float) else v for k, v in sorted(record.items())}


WRITERS = """
import json, os, sys
import pandas as pd
import ray
from resources.warehouses import default_warehouse

@ray.remote(num_cpus=0.25)
def writer(worker, rounds):
    from resources import lake as lake_module
    from resources.partitioned_lake import overwrite_partition
    lake = default_warehouse()
    for r in range(rounds):
        frame = pd.DataFrame({"worker": worker, "round": r, "i": range(5 + (worker + r) % 4)})
        lake.write(lambda conn: overwrite_partition(conn, "contended", {"model": f"w{worker}"}, frame), ["contended"])
    return {"node": ray.get_runtime_context().get_node_id(), "retried": sum(lake_module.conflicts_retried.values())}

names = ("WARMTH_WAREHOUSE", "WARMTH_CONFIG", "WARMTH_HOME", "WARMTH_PG_HOST", "WARMTH_PG_PORT", "WARMTH_PG_USER",
         "WARMTH_PG_DB")  # the password is in the nodes' own environment
ray.init(address="auto", runtime_env={"env_vars": {n: os.environ[n] for n in names}})
default_warehouse().query_df("SELECT 1")  # the lake's schema, once, before the writers
done = ray.get([writer.remote(w, 20) for w in range(8)])
rows = default_warehouse().query_df("SELECT model, worker, round, i FROM contended")
print(json.dumps({"writers": done, "rows": rows.to_dict("records")}))
"""


def test_eight_writers_on_two_nodes_overwrite_partitions_of_one_table_for_twenty_rounds(cluster):
    home, env, _ = cluster
    lake_env = {**env, "WARMTH_WAREHOUSE": "ducklake", "WARMTH_CONFIG": str(REPO / "demo.toml")}
    out = _ok(run_in_cluster(lake_env, PYTHON, "-c", WRITERS, timeout=900), home).stdout.strip().splitlines()[-1]
    seen = json.loads(out)
    assert len({w["node"] for w in seen["writers"]}) == 2, seen["writers"]  # the writers ran on both nodes
    rows = seen["rows"]
    expected = {f"w{w}": 5 + (w + 19) % 4 for w in range(8)}
    counts = {}
    for row in rows:
        counts[row["model"]] = counts.get(row["model"], 0) + 1
        assert row["round"] == 19 and row["model"] == f"w{row['worker']}", row
    assert counts == expected  # the last round of every writer, whole: no row lost, none duplicated
    retried = sum(w["retried"] for w in seen["writers"])
    print(f"8 writers x 20 rounds on 2 nodes: {len(rows)} rows, conflicts retried {retried}")
