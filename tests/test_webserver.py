"""The UI: dagster-webserver loads the workspace and serves the asset graph over GraphQL."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest

from tests.serving_helpers import free_port

REPO = Path(__file__).resolve().parents[1]
QUERY = ("{ assetNodes { assetKey { path } groupName dependencyKeys { path } "
         "partitionKeysByDimension { name partitionKeys } } }")
SAMPLES = REPO.parent / "shared" / "data" / "warm_ai_paper" / "sample_outputs"


def _tail(proc) -> str:
    proc.kill()
    return proc.communicate()[0][-3000:]


def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@pytest.mark.slow
@pytest.mark.needs_shared("data/warm_ai_paper/sample_outputs")
def test_webserver_serves_the_asset_graph(warmth_home, instance, resources):
    from tests.study_configs import study_settings
    from warmth_assets.assets.registry import model_registry
    from warmth_assets.definitions import defs as load_defs
    from warmth_assets.importer import import_outputs

    defs = load_defs()
    # The demo's models as `make demo` leaves them: the configured one registered, the study's samples imported.
    dg.materialize([model_registry], instance=instance, resources=resources)
    import_outputs(SAMPLES, "warm-e2", settings=study_settings(), warehouse=resources["warehouse"],
                   tables_dir=warmth_home / "tables", instance=instance)

    graph = defs.resolve_asset_graph()
    expected = {
        "/".join(k.path): sorted("/".join(p.path) for p in graph.get(k).parent_keys)
        for k in graph.get_all_asset_keys()
    }
    port = free_port()
    webserver = Path(sys.executable).parent / "dagster-webserver"
    proc = subprocess.Popen(
        [str(webserver), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=REPO, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        # A readiness wait, not a speed check: generous for a busy machine, the log's tail if it never comes.
        deadline = time.monotonic() + 600
        nodes = None
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                data = _graphql(port, QUERY)
                if data.get("data", {}).get("assetNodes"):
                    nodes = data["data"]["assetNodes"]
                    break
            except OSError:
                pass
            time.sleep(1)
        assert nodes is not None, "webserver never served the asset graph: " + _tail(proc)
        served = {"/".join(n["assetKey"]["path"]): sorted("/".join(d["path"]) for d in n["dependencyKeys"]) for n in nodes}
        assert served == expected
        groups = {"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes}
        assert groups["model_registry"] == "registry"
        # What the partitions tabs list: only partitions that can be materialised (docs/design.md §2).
        dims = {"/".join(n["assetKey"]["path"]): {d["name"]: d["partitionKeys"] for d in n["partitionKeysByDimension"]}
                for n in nodes}
        assert dims["warmth_scores"] == {"checkpoint": ["original", "warm-e1", "warm-e2", "cold-e1", "cold-e2",
                                                        "warm-prompt"], "model": ["smollm2-135m-instruct"]}
        assert dims["judgments"] == {"checkpoint": ["original", "warm-e2", "cold-e2", "warm-prompt"],
                                     "model": ["smollm2-135m-instruct"]}
        assert dims["imported_outputs"] == {"checkpoint": ["original", "warm-e2"], "model": ["llama_70b", "qwen_32b"]}
    finally:
        os.kill(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode is not None
