"""Serving beyond loopback is authenticated, against the real vLLM server (CPU build).

The command `warmth vllm-command --host 0.0.0.0` prints refuses to start without VLLM_API_KEY in its environment;
started with it, the server refuses a request without the key (HTTP 401) and answers one with it, which the runner
sends from `EnvVar("VLLM_API_KEY")` in a Dagster run; the key is in no process's argv, no log line and no file.

One keyed server for this module, started once the session's server (test_vllm.py) has stopped. It listens on
127.0.0.1, not 0.0.0.0: it runs the printed command with its --host moved to loopback and its key guard kept
(nothing a test starts listens beyond loopback; vLLM requires the key whenever VLLM_API_KEY is set, whatever the host).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from resources.llm import LLMResource
from resources.llm_errors import LLMCallError
from tests.serving.conftest import FIGURES, MODEL, stop_the_session_server
from warmth_assets.lib.vllm_server import API_KEY_ENV, KEY_GUARD

pytestmark = [pytest.mark.serving, pytest.mark.slow]
# Fresh for each session: found anywhere, it was leaked by this session.
KEY = "warmth-test-key-" + secrets.token_hex(16)
OPEN_ROW = {"access": "open_weight", "slug": MODEL, "source": "", "source_kind": "gguf", "chat_template": "model"}
BASE_ADAPTER = {"kind": "base", "path": "", "sha256": "", "fine_tuned_model": ""}


@dataclass
class Keyed:
    server: object  # lib/vllm_server.VLLMServer
    printed: str  # what `warmth vllm-command --host 0.0.0.0` printed
    log: Path
    started_at: float  # time.time() before the server started (files written since are searched for the key)


def _on_loopback(printed: str) -> list[str]:
    """The printed command (key guard in front, --host 0.0.0.0) with its host moved to 127.0.0.1."""
    argv = shlex.split(printed)
    assert argv[:len(KEY_GUARD)] == list(KEY_GUARD), printed
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    argv[argv.index("--host") + 1] = "127.0.0.1"
    return argv


def _without_key() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != API_KEY_ENV}


@pytest.fixture(scope="module")
def keyed(serving_files):
    from tests.serving_helpers import free_port
    from warmth_assets.lib.vllm_server import READY_TIMEOUT_S, VLLMServer

    stop_the_session_server()
    printed, _ = serving_files.vllm_command("--host", "0.0.0.0", "--port", str(free_port()))
    log = serving_files.home / "vllm-keyed.log"
    started_at = time.time()
    # The key reaches the server through its environment only.
    server = VLLMServer(_on_loopback(printed), log_path=log, env={**os.environ, API_KEY_ENV: KEY})
    server.start(READY_TIMEOUT_S)
    FIGURES["keyed_ready_s"] = round(server.ready_after_s, 1)
    try:
        yield Keyed(server=server, printed=printed, log=log, started_at=started_at)
    finally:
        server.stop()


def test_the_command_printed_for_beyond_loopback_does_not_start_without_the_key(serving_files):
    """No key in the environment: the printed command stops in its guard, one line naming VLLM_API_KEY, before vLLM
    starts (a broken guard would start vLLM, which answers nothing on stderr within the bound and fails here)."""
    from tests.serving_helpers import free_port

    printed, note = serving_files.vllm_command("--host", "0.0.0.0", "--port", str(free_port()))
    assert API_KEY_ENV in note and "export" in note  # the user is told, on stderr (stdout holds the command)
    gpu, gpu_note = serving_files.vllm_command("--gpu")  # 0.0.0.0 by default: the guard too
    assert shlex.split(gpu)[:len(KEY_GUARD) + 2] == [*KEY_GUARD, "vllm", "serve"] and API_KEY_ENV in gpu_note
    loopback, loopback_note = serving_files.vllm_command()
    assert not loopback_note and "sh" not in shlex.split(loopback)[:1]  # loopback: key-free, as before

    process = subprocess.Popen(_on_loopback(printed), env=_without_key(), stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = process.communicate(timeout=120)  # a bound for a broken guard, not a speed check
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 2, out[-2000:]
    assert len(out.strip().splitlines()) == 1 and f"export {API_KEY_ENV}" in out, out[-2000:]


def _status(url: str, key: str | None = None, body: dict | None = None, scheme: str = "Bearer") -> int:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["Authorization"] = f"{scheme} {key}"
    data = json.dumps(body).encode() if body is not None else None
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=120) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_request_without_the_key_is_refused_and_one_with_it_answered(keyed):
    url = keyed.server.base_url
    chat = {"model": MODEL, "messages": [{"role": "user", "content": "Say hi."}], "max_tokens": 4}
    assert _status(f"{url}/models") == 401
    assert _status(f"{url}/models", "not-" + KEY) == 401
    assert _status(f"{url}/models", KEY, scheme="Basic") == 401
    assert _status(f"{url}/chat/completions", body=chat) == 401
    assert _status(f"{url}/models", KEY) == 200
    assert _status(f"{url}/chat/completions", KEY, body=chat) == 200


def test_the_runner_sends_the_key_from_envvar_in_a_run_and_logs_it_nowhere(keyed, tmp_path, monkeypatch, caplog,
                                                                            capfd):
    """`build_llm` gives the `llm` resource EnvVar("VLLM_API_KEY"); Dagster resolves it when the run starts and the
    vLLM runner sends it: answered. Without VLLM_API_KEY the same call is refused (401). The key is in no event of
    the run, no log record, no output and no stored row; the call's cache key is the same with or without it."""
    from resources.runners import runner_for
    from resources.warehouse import WarehouseResource
    from tests.study_configs import study_settings
    from warmth_assets.build import build_llm
    from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig

    caplog.set_level(logging.DEBUG)
    settings = study_settings({"serving": {"vllm_base_url": keyed.server.base_url}}, new={"serving"})
    warehouse = WarehouseResource(database=str(tmp_path / "warehouse.duckdb"))
    request = ChatRequest.build([{"role": "user", "content": "Name a colour."}], model=MODEL,
                                config=GenerateConfig(temperature=0.0, max_tokens=8), template_version="auth-test")

    monkeypatch.delenv(API_KEY_ENV, raising=False)
    unkeyed = runner_for(build_llm(settings, warehouse), settings, OPEN_ROW, BASE_ADAPTER, "original")
    assert unkeyed.llm.vllm_api_key is None and unkeyed.server == keyed.server.base_url
    with pytest.raises(LLMCallError, match="HTTP 401"):
        unkeyed.llm.complete_many([request])

    monkeypatch.setenv(API_KEY_ENV, KEY)
    llm = build_llm(settings, warehouse)
    assert isinstance(llm.vllm_api_key, dg.EnvVar) and llm.vllm_api_key.env_var_name == API_KEY_ENV
    answered = {}

    @dg.asset
    def served_answer(context, llm: LLMResource):
        runner = runner_for(llm, settings, OPEN_ROW, BASE_ADAPTER, "original")
        results, usage = runner.llm.complete_many([request], log=context.log.info)
        answered.update(text=results[0].text, key=runner.llm.key(request))
        context.log.info(f"{runner.server} answered {results[0].text!r} ({usage.completion_tokens} tokens)")

    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([served_answer], resources={"llm": llm}, instance=instance)
    assert result.success and answered["text"]
    assert answered["key"] == unkeyed.llm.key(request)  # the key is no part of the cache key

    events = [dg.serialize_value(record) for record in instance.all_logs(result.run_id)]
    assert events and not [e for e in events if KEY in e]
    assert not [r for r in caplog.records if KEY in r.getMessage()]
    out, err = capfd.readouterr()
    assert KEY not in out and KEY not in err
    rows = warehouse.query_df("SELECT * FROM llm_calls")
    assert len(rows) == 1 and KEY not in rows.to_json()


def _server_group(pgid: int) -> dict[int, bytes]:
    """pid -> /proc/<pid>/cmdline of every process in the server's process group (API server, engine core)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:  # the field after state and ppid: the process group
                found[int(stat.parent.name)] = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


def test_the_key_is_in_no_argv_no_log_and_no_file(keyed, serving_files):
    """The key went in through the environment (the API server's /proc/<pid>/environ has it), and appears in no
    process's argv, not in the server's log, and in no file written since the server started: the test homes and
    vLLM's own cache folder."""
    group = _server_group(keyed.server.process.pid)
    assert len(group) >= 2, group  # the API server (`sh` exec'd into it) and the engine core
    assert not [pid for pid, cmdline in group.items() if KEY.encode() in cmdline]
    assert b"vllm.entrypoints.openai.api_server" in group[keyed.server.process.pid]
    environ = (Path("/proc") / str(keyed.server.process.pid) / "environ").read_bytes().split(b"\0")
    assert f"{API_KEY_ENV}={KEY}".encode() in environ

    text = keyed.log.read_text(errors="replace")
    assert "Application startup complete" in text or "Uvicorn running" in text, text[-2000:]
    assert KEY not in text

    cache = Path(os.environ.get("VLLM_CACHE_ROOT") or Path.home() / ".cache" / "vllm")
    leaked, searched = [], 0
    for folder in (serving_files.home, cache, keyed.log.parent.parent):
        for path in folder.rglob("*") if folder.exists() else ():
            try:
                if not path.is_file() or path.stat().st_mtime < keyed.started_at:
                    continue
                searched += 1
                if KEY.encode() in path.read_bytes():
                    leaked.append(path)
            except OSError:
                continue
    assert searched and not leaked, leaked
