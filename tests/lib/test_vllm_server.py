"""lib/vllm_server without vLLM: the command it builds, and the process handling (readiness, errors, stop)
against stand-in processes. The real server is tested in tests/serving/."""

import json
import os
import shlex
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
    guarded = spec.argv(gpu=True, host="0.0.0.0")  # beyond loopback: the key guard in front (tests below)
    gpu = guarded[len(vllm_server.KEY_GUARD):]
    assert guarded[:len(vllm_server.KEY_GUARD)] == list(vllm_server.KEY_GUARD)
    assert gpu[:5] == ["vllm", "serve", "/models/smollm2", "--distributed-executor-backend", "mp"] and "--dtype" not in gpu and "env" not in gpu
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


@pytest.mark.parametrize("host, loopback", [
    ("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
    ("LocalHost", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("192.168.1.2", False),
    ("", False), ("gpu-node-1", False), ("127.0.0.1.example.com", False), ("128.0.0.1", False),
])
def test_loopback_is_127_0_0_0_slash_8_ipv6_one_and_localhost(host, loopback):
    assert vllm_server.is_loopback(host) is loopback
    assert vllm_server.needs_api_key(host) is not loopback
    command = ServeSpec(model="/m", served_name="m").argv(python="/venv/bin/python", host=host)
    assert (command[:len(vllm_server.KEY_GUARD)] == list(vllm_server.KEY_GUARD)) is not loopback


def _stand_in(script: str) -> list[str]:
    return [sys.executable, "-c", script]


def test_beyond_loopback_the_command_runs_only_with_the_key_in_its_environment():
    """The guard in front of the command (a stand-in for vLLM behind it): without VLLM_API_KEY it stops, one line
    naming the variable, before the command runs; with it the command runs and finds the key in its environment.
    The key is in neither command line."""
    argv = ServeSpec(model="/m", served_name="m").argv(gpu=True, host="0.0.0.0")
    guard = argv[:len(vllm_server.KEY_GUARD)]
    assert guard == list(vllm_server.KEY_GUARD) and argv[len(guard):][:2] == ["vllm", "serve"]
    probe = _stand_in("import os; print('started with', len(os.environ['VLLM_API_KEY']), 'characters')")
    env = {k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"}
    refused = subprocess.run([*guard, *probe], env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "started" not in refused.stdout
    assert len(refused.stderr.strip().splitlines()) == 1 and "export VLLM_API_KEY" in refused.stderr
    ran = subprocess.run([*guard, *probe], env={**env, "VLLM_API_KEY": "s3cret-value"}, capture_output=True,
                         text=True, timeout=60)
    assert ran.returncode == 0 and ran.stdout.strip() == "started with 12 characters", ran.stderr
    assert not any("s3cret" in a for a in argv)
    for extra in (("--api-key", "x"), ("--api-key=x",)):
        with pytest.raises(ValueError, match="VLLM_API_KEY instead"):
            ServeSpec(model="/m", served_name="m", extra_args=extra).argv()


def test_the_key_is_required_where_it_can_be_checked():
    vllm_server.require_api_key("127.0.0.1", {})  # loopback: key-free
    vllm_server.require_api_key("0.0.0.0", {"VLLM_API_KEY": "k"})
    beyond = r"--host 0\.0\.0\.0 is beyond loopback.*export VLLM_API_KEY"
    with pytest.raises(vllm_server.ServingKeyMissing, match=beyond):
        vllm_server.require_api_key("0.0.0.0", {"VLLM_API_KEY": ""})
    assert vllm_server.key_note("127.0.0.1") == "" and "export VLLM_API_KEY" in vllm_server.key_note("::")


def test_a_keyed_server_is_polled_with_its_key(tmp_path):
    """VLLMServer reads the key from the environment it starts the server with, and sends it to /v1/models (vLLM
    guards /v1 once VLLM_API_KEY is set): a stand-in that answers 401 without it is still found ready."""
    code = STANDIN.replace("def do_GET(self):", "def do_GET(self):\n"
                           "        if self.headers.get('Authorization') != 'Bearer k3y':\n"
                           "            self.send_response(401); self.end_headers(); return")
    port = str(free_port())
    server = VLLMServer(_stand_in(code) + ["--port", port], log_path=tmp_path / "s.log",
                        env={**os.environ, "VLLM_API_KEY": "k3y"})
    with server:
        assert server.models() == ["m", "warm-e2"]
    unkeyed = VLLMServer(_stand_in(code) + ["--port", str(free_port())], log_path=tmp_path / "u.log",
                         env={k: v for k, v in os.environ.items() if k != "VLLM_API_KEY"})
    with pytest.raises(VLLMServerError, match="did not answer"):
        unkeyed.start(ready_timeout_s=3)


def test_warmth_serve_beyond_loopback_without_the_key_refuses_in_one_line(monkeypatch, capsys, tmp_path):
    from warmth_assets.cli import main

    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.setenv("WARMTH_SERVING_PYTHON", str(tmp_path / "no-venv" / "python"))
    assert main(["serve", "smollm2-135m-instruct", "--host", "0.0.0.0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("warmth serve: --host 0.0.0.0 is beyond loopback"), err
    assert "export VLLM_API_KEY" in err[0]


def test_vllm_command_beyond_loopback_prints_the_guarded_command_and_a_note(monkeypatch, capsys):
    """stdout: the command alone (a script may run it); stderr: what to export. The key is checked where the
    command runs, so printing it needs no key."""
    from warmth_assets import cli

    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.setattr(cli, "serve_spec", lambda model, settings=None, warehouse=None: ServeSpec(model="/m",
                                                                                                  served_name=model))
    assert cli.main(["vllm-command", "m", "--gpu"]) == 0
    out, err = capsys.readouterr()
    argv = shlex.split(out.strip())
    assert argv[:len(vllm_server.KEY_GUARD)] == list(vllm_server.KEY_GUARD) and "0.0.0.0" in argv
    assert "export VLLM_API_KEY" in err and "never put the value on the command line" in err
    assert cli.main(["vllm-command", "m"]) == 0  # the CPU form on loopback: no guard, no note
    out, err = capsys.readouterr()
    assert shlex.split(out)[0] == "env" and err == ""
