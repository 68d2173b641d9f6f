"""Run inside the cluster's namespace after the four GPU steps: what Ray's job records and the Postgres instance
say, as JSON on the last line (the test asserts on it)."""

import json
import os
import sys
from pathlib import Path

import dagster as dg
from ray.job_submission import JobSubmissionClient
from ray.util.state import list_nodes

home = Path(os.environ["WARMTH_HOME"])
client = JobSubmissionClient(os.environ["WARMTH_RAY_ADDRESS"])
jobs = [j for j in client.list_jobs() if (j.metadata or {}).get("dagster/op")]
spans = {name: json.loads((home / "finished" / name).read_text()) for name in os.listdir(home / "finished")}
instance = dg.DagsterInstance.get()
runs = instance.get_runs()
successes = [r.event_log_entry.dagster_event.step_key for r in instance.get_records_for_run(
    runs[0].run_id, of_type=dg.DagsterEventType.STEP_SUCCESS).records] if runs else []
heads = [n.node_id for n in list_nodes(address=os.environ["WARMTH_RAY_ADDRESS"]) if n.is_head_node]
print(json.dumps({
    "head": heads[0],
    "storage": type(instance.event_log_storage).__name__,
    "run_status": runs[0].status.value if runs else None,
    "step_successes": sorted(successes),
    "steps": {j.metadata["dagster/op"]: {"node": j.driver_node_id, "status": str(j.status.value),
                                        **spans.get(j.metadata["dagster/op"], {})}
              for j in jobs},
}))
sys.exit(0)
