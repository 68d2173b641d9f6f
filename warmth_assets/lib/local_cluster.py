"""The scale-out stack on one machine, for trying a cluster: PostgreSQL (Dagster's runs, events and schedules) and a
Ray head with worker nodes (the steps), every process and its state under `WARMTH_HOME/cluster/`.

Loopback only: Ray registers its nodes on the machine's own network address whatever `--node-ip-address` says, so
the whole stack runs in a network namespace of its own holding only `lo` (`ip netns`, as root), and so do the runs
that use it (`warmth cluster exec -- CMD`). Postgres's data folder belongs to the `postgres` user (its binaries
refuse root); its password is made at `up`, printed once as an `export` line, and never written to a file.
"""

from __future__ import annotations

import glob
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

PG_USER, PG_DB = "postgres", "warmth"
WORKER_PORT_FLAGS = ("--node-manager-port", "--object-manager-port", "--metrics-export-port",
                     "--dashboard-agent-listen-port", "--dashboard-agent-grpc-port", "--runtime-env-agent-port")
STATE = "state.json"
# Only workers advertise it and every step asks for it (warmth_assets/scaleout.py): the head runs no step.
WORKER_RESOURCE, WORKER_CAPACITY = "warmth_worker", 1000


class ClusterError(RuntimeError):
    """The stack could not start or stop; the message names the part and where its log is."""


@dataclass
class ClusterState:
    home: str
    netns: str
    workers: int
    pg_port: int
    ray_port: int
    dashboard_port: int
    groups: dict[str, int] = field(default_factory=dict)  # part -> process group id
    pids: dict[str, list[int]] = field(default_factory=dict)  # part -> every process seen at start

    @property
    def folder(self) -> Path:
        return Path(self.home) / "cluster"

    @property
    def dashboard(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def environment(self, password: str | None = None) -> dict[str, str]:
        """What the runs on this cluster need (the password only when given: it is not stored)."""
        env = {"WARMTH_EXECUTOR": "ray", "WARMTH_RAY_ADDRESS": self.dashboard,
               "WARMTH_PG_HOST": "127.0.0.1", "WARMTH_PG_PORT": str(self.pg_port), "WARMTH_PG_USER": PG_USER,
               "WARMTH_PG_DB": PG_DB, "WARMTH_NETNS": self.netns}
        if password is not None:
            env["WARMTH_PG_PASSWORD"] = password
        return env


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or ([shutil.which(name)] if shutil.which(name) else [])
    if not found:
        raise ClusterError(f"PostgreSQL's {name} was not found (Debian: apt-get install postgresql)")
    return found[-1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_netns(netns: str, command: list[str]) -> list[str]:
    return ["ip", "netns", "exec", netns, *command] if netns else command


def _run(command: list[str], what: str, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(command, capture_output=True, text=True, **kw)
    if done.returncode:
        raise ClusterError(f"{what} failed ({done.returncode}): {(done.stderr or done.stdout).strip()[-1500:]}")
    return done


def _descendants(pid: int) -> list[int]:
    import psutil

    try:
        root = psutil.Process(pid)
        return [pid, *(p.pid for p in root.children(recursive=True))]
    except psutil.NoSuchProcess:
        return []


def _alive(pids: list[int]) -> list[int]:
    import psutil

    return [p for p in pids if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]


def read_state(home: Path) -> ClusterState | None:
    path = Path(home) / "cluster" / STATE
    return ClusterState(**json.loads(path.read_text())) if path.exists() else None


def _write_state(state: ClusterState) -> None:
    (state.folder / STATE).write_text(json.dumps(asdict(state), indent=2))


def _start_postgres(state: ClusterState, password: str) -> None:
    data = state.folder / "postgres"
    probe = subprocess.run(["runuser", "-u", PG_USER, "--", "test", "-x", str(state.folder)])
    if probe.returncode:
        raise ClusterError(f"the postgres user cannot reach {state.folder}: make WARMTH_HOME and its parents "
                           "traversable (chmod o+x) or put WARMTH_HOME elsewhere")
    _run(["install", "-d", "-o", PG_USER, "-m", "700", str(data)], "making Postgres's folder")
    if not (data / "PG_VERSION").exists():
        _run(["runuser", "-u", PG_USER, "--", pg_bin("initdb"), "-D", str(data), "--auth-local=trust",
              "--auth-host=scram-sha-256", "-U", PG_USER, "--no-sync"], "initdb")
    postgres_start(state)
    # The password travels on stdin, never in argv or a file.
    sql = (f"ALTER USER {PG_USER} PASSWORD '{password}';\n"
           f"SELECT 'CREATE DATABASE {PG_DB}' WHERE NOT EXISTS "
           f"(SELECT FROM pg_database WHERE datname = '{PG_DB}')\\gexec\n")
    _run(in_netns(state.netns, ["runuser", "-u", PG_USER, "--", pg_bin("psql"), "-h", str(data), "-p",
                                str(state.pg_port), "-v", "ON_ERROR_STOP=1", "-q", "-f", "-"]),
         "setting Postgres's password and database", input=sql)


def postgres_up(home: Path, netns: str = "") -> tuple[ClusterState, str]:
    """Postgres alone (on a free loopback port, its folder under `home`/cluster), for a warehouse catalog without
    Ray; returns the state (stop it with `postgres_stop`) and the password."""
    state = ClusterState(home=str(home), netns=netns, workers=0, pg_port=_free_port(), ray_port=0, dashboard_port=0)
    state.folder.mkdir(parents=True, exist_ok=True)
    password = secrets.token_urlsafe(24)
    _start_postgres(state, password)
    return state, password


def postgres_start(state: ClusterState) -> None:
    """Start the cluster's Postgres server (its data folder already made); it listens on loopback only."""
    data = state.folder / "postgres"
    log = data / "server.log"
    _run(in_netns(state.netns, ["runuser", "-u", PG_USER, "--", pg_bin("pg_ctl"), "-D", str(data), "-w", "-l",
                                str(log), "-o", f"-h 127.0.0.1 -p {state.pg_port} -k {data}", "start"]),
         f"starting Postgres (log: {log})")
    state.pids["postgres"] = [int((data / "postmaster.pid").read_text().split()[0])]


def postgres_stop(state: ClusterState) -> None:
    data = state.folder / "postgres"
    if (data / "postmaster.pid").exists():
        subprocess.run(in_netns(state.netns, ["runuser", "-u", PG_USER, "--", pg_bin("pg_ctl"), "-D", str(data),
                                              "-m", "fast", "-w", "stop"]), capture_output=True)


# Ray puts Unix sockets under <temp-dir>/session_<date>_<time>_<us>_<pid>/sockets/dash_MetricsHead (about 66 bytes
# after the temp dir), and a socket path may hold at most 107 bytes: a longer temp dir kills the head's dashboard.
RAY_TEMP_MAX = 107 - 70


def ray_temp_dir(folder: Path) -> Path:
    """Ray's temp dir: `folder`/ray, or where that path is too long for Ray's sockets, a short folder under /tmp that
    `folder`/ray links to (so its logs are still found under WARMTH_HOME)."""
    wanted = folder / "ray"
    if len(str(wanted)) <= RAY_TEMP_MAX:
        return wanted
    import hashlib

    short = Path("/tmp") / f"warmth-ray-{hashlib.sha256(str(wanted).encode()).hexdigest()[:10]}"
    short.mkdir(mode=0o700, exist_ok=True)
    if not wanted.is_symlink():
        wanted.symlink_to(short, target_is_directory=True)
    return short


def _start_ray(state: ClusterState, part: str, args: list[str], env: dict[str, str]) -> None:
    log = open(state.folder / f"{part}.log", "ab")
    ray = str(Path(sys.executable).parent / "ray")
    proc = subprocess.Popen(in_netns(state.netns, [ray, "start", "--block", "--disable-usage-stats", *args]),
                            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    state.groups[part] = proc.pid


def _ray_nodes(state: ClusterState) -> list[dict]:
    """Alive nodes as the dashboard reports them (asked from inside the namespace)."""
    code = ("import json, sys\nfrom ray.util.state import list_nodes\n"
            "print(json.dumps([dict(n.__dict__) if hasattr(n, '__dict__') else dict(n) for n in "
            "list_nodes(address=sys.argv[1], filters=[('state', '=', 'ALIVE')])], default=str))")
    done = subprocess.run(in_netns(state.netns, [sys.executable, "-c", code, state.dashboard]),
                          capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1]) if done.returncode == 0 and done.stdout.strip() else []


def up(home: Path, workers: int, *, netns: str = "warmth", env: dict[str, str] | None = None,
       ready_timeout_s: float = 300.0) -> tuple[ClusterState, str]:
    """Start Postgres, a Ray head (no steps: `--num-cpus=0`) and `workers` nodes of one CPU and one logical GPU
    each, in the network namespace `netns` ("" runs in the current one, for a caller already isolated).
    Returns the state and Postgres's password (printed once, not stored)."""
    home = Path(home)
    if read_state(home):
        raise ClusterError(f"a cluster is already recorded under {home / 'cluster'}: `warmth cluster down` first")
    folder = home / "cluster"
    folder.mkdir(parents=True, exist_ok=True)
    if netns:
        _run(["ip", "netns", "add", netns], f"making the network namespace {netns}")
        _run(["ip", "netns", "exec", netns, "ip", "link", "set", "lo", "up"], "bringing up loopback")
    state = ClusterState(home=str(home), netns=netns, workers=workers, pg_port=_free_port(),
                         ray_port=_free_port(), dashboard_port=_free_port())
    _write_state(state)  # from here on, `down` can stop whatever was started
    password = secrets.token_urlsafe(24)
    _start_postgres(state, password)
    _write_state(state)
    # Secrets reach steps from their node's environment (like a pod's Secret), never through a Ray job's runtime
    # env, which Ray keeps in its job records and shows on the dashboard: Postgres's password, and the API keys of
    # the environment `up` ran in.
    node_env = {**(env or os.environ), **state.environment(password)}
    node_env["PATH"] = f"{Path(sys.executable).parent}:{node_env.get('PATH', '')}"  # steps run `dagster api ...`
    _start_ray(state, "ray-head", ["--head", "--num-cpus=0", "--num-gpus=0", "--port", str(state.ray_port),
                                   "--node-ip-address", "127.0.0.1", "--include-dashboard=true",
                                   "--dashboard-host", "127.0.0.1", "--dashboard-port", str(state.dashboard_port),
                                   "--temp-dir", str(ray_temp_dir(folder))], node_env)
    _write_state(state)
    _wait_for_nodes(state, 1, ready_timeout_s)
    for i in range(workers):
        # Nodes on one host would all take Ray's default agent and metrics ports: each gets its own.
        ports = [arg for flag in WORKER_PORT_FLAGS for arg in (flag, str(_free_port()))]
        _start_ray(state, f"ray-worker-{i}", ["--address", f"127.0.0.1:{state.ray_port}", "--node-ip-address",
                                              "127.0.0.1", "--num-cpus=1", "--num-gpus=1", *ports,
                                              f"--resources={json.dumps({WORKER_RESOURCE: WORKER_CAPACITY})}"],
                   node_env)
        _write_state(state)
        # One after another: two raylets starting at once took the same port here ("bind: Address already in use")
        _wait_for_nodes(state, i + 2, ready_timeout_s)
    for part, pid in state.groups.items():
        state.pids[part] = _descendants(pid)
    _write_state(state)
    return state, password


def _wait_for_nodes(state: ClusterState, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if len(_ray_nodes(state)) >= count:
            return
        dead = [part for part, pid in state.groups.items() if not _alive([pid])]
        if dead:
            raise ClusterError(f"{', '.join(dead)} exited while starting: see {state.folder}/<part>.log")
        time.sleep(1.0)
    raise ClusterError(f"Ray did not report {count} nodes within {timeout_s:.0f} s: see {state.folder}/ray-*.log")


def status(home: Path) -> list[str]:
    state = read_state(home)
    if state is None:
        return [f"no cluster recorded under {Path(home) / 'cluster'}"]
    lines = [f"network namespace: {state.netns or '(the caller’s)'}"]
    ready = subprocess.run(in_netns(state.netns, [pg_bin("pg_isready"), "-h", "127.0.0.1", "-p",
                                                  str(state.pg_port)]), capture_output=True, text=True)
    lines.append(f"postgres 127.0.0.1:{state.pg_port}: {(ready.stdout or ready.stderr).strip()}")
    nodes = _ray_nodes(state)
    lines.append(f"ray head 127.0.0.1:{state.ray_port}, dashboard {state.dashboard}: {len(nodes)} nodes alive")
    for node in nodes:
        lines.append(f"  node {str(node.get('node_id'))[:12]} head={node.get('is_head_node')} "
                     f"resources={node.get('resources_total')}")
    return lines


def down(home: Path, *, grace_s: float = 5.0) -> list[str]:
    """Stop everything `up` recorded: TERM, wait, then KILL (Ray's GCS may ignore TERM); remove the namespace.
    The grace is short: Ray's GCS ignored TERM for 16 s here, and this cluster keeps nothing a KILL could lose
    (Postgres, which does, is stopped first and cleanly)."""
    state = read_state(home)
    if state is None:
        return [f"no cluster recorded under {Path(home) / 'cluster'}"]
    said = []
    pids = sorted({p for part in state.pids.values() for p in part}
                  | {p for pid in state.groups.values() for p in _descendants(pid)})
    if (state.folder / "postgres" / "postmaster.pid").exists():
        postgres_stop(state)
        said.append("postgres stopped")
    for pgid in state.groups.values():
        try:
            os.killpg(pgid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in _alive(pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s
    while _alive(pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    stubborn = _alive(pids)
    for pid in stubborn:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace_s  # KILL cannot be refused, but takes its moment
    while _alive(stubborn) and time.monotonic() < deadline:
        time.sleep(0.1)
    said.append(f"ray stopped ({len(pids)} processes; {len(stubborn)} needed KILL)")
    if state.netns:
        subprocess.run(["ip", "netns", "delete", state.netns], capture_output=True)
        said.append(f"network namespace {state.netns} removed")
    (state.folder / STATE).unlink()
    return said
