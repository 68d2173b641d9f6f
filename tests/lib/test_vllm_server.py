"""lib/vllm_server without vLLM: the command it builds, and the process handling (readiness, errors, stop)
against stand-in processes. The real server is tested in tests/serving/."""

import json
import subprocess
import sys
import textwrap
import time

import pytest

from warmth_assets.lib import vllm_server
from tests.serving_helpers import free_port
from warmth_assets.lib.vllm_server import ServeSpec, VLLMServer, VLLMServerError


def _adapter(folder, r=8, **extra):
    folder.mkdir(parents=True)
    (folder / "adapter_config.json").write_text(json.dumps({"peft_type": "LORA", "r": r, **extra}))
    return folder


def test_spec_serves_the_adapters_under_their_checkpoints_with_the_rank_limit_from_their_configs(tmp_path):
    warm = _adapter(tmp_path / "warm", r=8)
    cold = _adapter(tmp_path / "cold", r=8, rank_pattern={"q_proj": 12})
    spec = vllm_server.serve_spec("smollm2-135m-instruct", "/models/smollm2", [("warm-e2", str(warm)),
                                                                              ("cold-e2", str(cold))])
    assert spec.served_name == vllm_server.served_base_name("smollm2-135m-instruct") == "smollm2-135m-instruct"
    assert spec.max_lora_rank == 16  # 12 rounded up to a rank vLLM accepts
    cpu = spec.argv(python="/venv/bin/python", port=8123)
    assert cpu[0] == "env" and cpu[cpu.index("-m") + 1] == "vllm.entrypoints.openai.api_server"
    assert cpu[cpu.index("--dtype") + 1] == "float32" and "--no-enable-chunked-prefill" in cpu
    assert cpu[cpu.index("--lora-modules") + 1:] == [f"cold-e2={cold}", f"warm-e2={warm}"]
    assert cpu[cpu.index("--max-loras") + 1] == "2" and cpu[cpu.index("--port") + 1] == "8123"
    gpu = spec.argv(gpu=True, host="0.0.0.0")
    assert gpu[:3] == ["vllm", "serve", "/models/smollm2"] and "--dtype" not in gpu and "env" not in gpu
    assert json.loads(gpu[gpu.index("--structured-outputs-config") + 1])["disable_any_whitespace"] is True
    assert "--enable-lora" not in ServeSpec(model="m", served_name="m").argv()  # base weights only


def test_adapters_vllm_cannot_serve_are_refused(tmp_path):
    with pytest.raises(ValueError, match="DoRA"):
        vllm_server.adapter_rank(_adapter(tmp_path / "dora", use_dora=True))
    with pytest.raises(ValueError, match="largest"):
        vllm_server.lora_rank_limit([1024])
    with pytest.raises(FileNotFoundError, match="adapter_config.json"):
        vllm_server.serve_spec("m", "/m", [("warm-e2", str(tmp_path / "missing"))])


def _group_gone(pgid: int, within_s: float = 120.0) -> bool:
    """No live process left in the group (zombies waiting for init to reap them do not count); `within_s` is a
    generous bound for a busy machine: it returns as soon as the group is gone."""
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        states = subprocess.run(["ps", "-o", "stat=", "-g", str(pgid)], capture_output=True, text=True).stdout.split()
        if all(state.startswith("Z") for state in states):
            return True
        time.sleep(0.2)
    return False


def test_a_server_that_exits_before_answering_raises_with_the_log_tail(tmp_path):
    argv = [sys.executable, "-c", "print('no such model: /models/x'); raise SystemExit(3)", "--port", str(free_port())]
    with pytest.raises(VLLMServerError, match=r"(?s)exited with code 3.*no such model"):
        VLLMServer(argv, log_path=tmp_path / "server.log").start(ready_timeout_s=30)


def test_a_server_that_never_answers_times_out_and_its_group_is_stopped(tmp_path):
    code = "import subprocess, time; subprocess.Popen(['sleep', '60']); print('loading', flush=True); time.sleep(60)"
    server = VLLMServer([sys.executable, "-c", code, "--port", str(free_port())], log_path=tmp_path / "server.log")
    with pytest.raises(VLLMServerError, match=r"(?s)did not answer .* within 2 s.*loading"):
        server.start(ready_timeout_s=2)
    # Stopped by us, not ended by itself (its 60 s sleep): killed by a signal. No wall-clock bound: on a busy
    # machine the stop itself may take long, and that is not what this checks.
    assert not server.alive() and server.process.returncode < 0
    assert _group_gone(server.process.pid)  # the child (`sleep`) went with the group


STANDIN = textwrap.dedent("""
    import http.server, json, subprocess, sys
    port = int(sys.argv[sys.argv.index("--port") + 1])
    subprocess.Popen(["sleep", "60"])  # like vLLM's engine and worker processes
    class H(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = json.dumps({"data": [{"id": "m"}, {"id": "warm-e2"}]} if self.path == "/v1/models"
                              else {"version": "0.0-test"}).encode()
            self.send_response(200); self.end_headers(); self.wfile.write(body)
        def log_message(self, *args):
            pass
    http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
""")


def test_a_ready_server_is_listed_and_stopped_with_its_children(tmp_path):
    server = VLLMServer([sys.executable, "-c", STANDIN, "--port", str(free_port())], log_path=tmp_path / "s.log")
    with server:
        assert server.models() == ["m", "warm-e2"] and server.version() == "0.0-test"
        assert server.base_url == f"http://127.0.0.1:{server.port}/v1" and server.ready_after_s is not None
    assert not server.alive() and _group_gone(server.process.pid)


def test_warmth_serve_without_the_serving_environment_says_how_to_make_it(monkeypatch, capsys, tmp_path):
    from warmth_assets.cli import main

    monkeypatch.setenv("WARMTH_SERVING_PYTHON", str(tmp_path / "no-venv" / "python"))
    assert main(["serve", "smollm2-135m-instruct"]) == 2
    assert "make serving" in capsys.readouterr().err
