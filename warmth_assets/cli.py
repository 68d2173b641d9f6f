"""The `warmth` command: `warmth demo`, `warmth estimate`, `warmth stale`, `warmth vllm-command MODEL`,
`warmth serve MODEL`, `warmth import-outputs DIR`, `warmth inspect`, `warmth cluster up|status|down|exec`."""

import argparse
import sys


def serve_spec(model: str, settings=None, warehouse=None):
    """What `warmth vllm-command` and `warmth serve` serve for a model (lib/vllm_server.ServeSpec): its base
    weights (the de-quantised folder of a GGUF source) under its slug, and the LoRA adapters of the
    checkpoints the study evaluates, each named by its checkpoint key."""
    import duckdb

    from resources.pretrained import resolve_pretrained
    from resources.warehouses import default_warehouse
    from warmth_assets.lib import vllm_server
    from warmth_assets.lib.config import ConfigError, load_config

    settings = settings or load_config()
    entry = settings.model(model)
    if entry.access != "open_weight":
        raise ConfigError(f"{model!r} is an API model ({entry.source}): there are no weights to serve; "
                          "name an open-weight [[models]] slug")
    try:
        adapters = (default_warehouse(settings) if warehouse is None else warehouse).query_df(
            "SELECT checkpoint, path FROM adapters WHERE model = ? AND kind = 'lora' ORDER BY checkpoint", [model])
        found = list(zip(adapters["checkpoint"], adapters["path"]))
    except duckdb.CatalogException:  # no `adapters` materialised in this home yet
        found = []
    evaluated = settings.evaluated_checkpoints()
    chosen = [(c, p) for c, p in found if evaluated is None or c in evaluated]
    if not chosen:
        print(f"warmth: no LoRA adapters of evaluated checkpoints registered for {model!r} (materialise `adapters`): "
              "serving the base weights only", file=sys.stderr)
    return vllm_server.serve_spec(model, resolve_pretrained(entry.source_kind, entry.source), chosen,
                                  entry.chat_template)


def vllm_command(model: str, *, gpu: bool = False, host: str | None = None, port: int = 8000, settings=None,
                 warehouse=None) -> str:
    """The command line that serves a model's base weights with every evaluated LoRA checkpoint as a module.

    CPU (default): vLLM's CPU build in `.venv-serving` (`make serving`), module form. GPU: `vllm serve`
    (the CUDA build, `pip install vllm`), listening on every interface for the platform to reach it. Beyond
    loopback the command runs only with VLLM_API_KEY exported (the server then requires it); a note says so on
    stderr (stdout holds the command alone)."""
    from warmth_assets.lib.vllm_server import key_note

    host = host or ("0.0.0.0" if gpu else "127.0.0.1")
    spec = serve_spec(model, settings, warehouse)
    command = spec.command(gpu=gpu, host=host, port=port)
    if note := key_note(host):
        print(note, file=sys.stderr)
    return command


def serve_command(model: str, host: str, port: int, ready_timeout_s: float) -> int:
    """`warmth serve MODEL`: run the CPU command of `vllm-command` until Ctrl-C (or SIGTERM). Beyond loopback it
    refuses to start without VLLM_API_KEY in the environment (the server inherits it and requires it)."""
    import shlex
    import signal

    from warmth_assets.lib import paths, vllm_server

    vllm_server.require_api_key(host)  # before anything slow: a user's mistake, one line and status 2
    python = vllm_server.serving_python()
    if not python.exists():
        print(f"warmth serve: {python} not found: create the serving environment with `make serving`", file=sys.stderr)
        return 2
    argv = serve_spec(model).argv(python=python, host=host, port=port)
    log = paths.warmth_home() / "logs" / f"vllm-{model}-{port}.log"
    server = vllm_server.VLLMServer(argv, log_path=log)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    # The server runs in its own process group, so nothing stops it but us: on SIGTERM too, and on SIGINT even
    # where this process started with SIGINT ignored (a background job of a script).
    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    print(f"starting: {shlex.join(argv)}\nlog: {log}", flush=True)
    try:
        try:
            server.start(ready_timeout_s)  # stops the server itself when it fails or is interrupted
        except vllm_server.VLLMServerError as exc:
            print(f"warmth serve: {exc}", file=sys.stderr)
            return 1
        keyed = f"\nand {vllm_server.API_KEY_ENV} (the same key) where the platform runs" \
            if vllm_server.needs_api_key(host) else ""
        print(f"ready after {server.ready_after_s:.0f} s: {', '.join(server.models())} at {server.base_url}\n"
              f"point the platform at it:\n  [serving]\n  vllm_base_url = \"{server.base_url}\"{keyed}\n"
              "Ctrl-C stops it.", flush=True)
        code = server.process.wait()
        print(f"warmth serve: the server exited with code {code}; last lines of {log}:\n{server.log_tail()}",
              file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def import_command(directory: str, warm_checkpoint: str | None) -> int:
    from pathlib import Path

    from resources.warehouses import default_warehouse
    from warmth_assets.importer import import_outputs
    from warmth_assets.instance import prepare_instance
    from warmth_assets.lib import paths
    from warmth_assets.lib.checkpoints import checkpoint_key
    from warmth_assets.lib.config import load_config
    from warmth_assets.lib.outputs_import import ImportFormatError

    settings = load_config()
    checkpoint = warm_checkpoint or checkpoint_key("warm", settings.finetune.selected_epoch)
    instance = prepare_instance(settings)
    try:
        summary = import_outputs(Path(directory), checkpoint, settings=settings, warehouse=default_warehouse(settings),
                                 tables_dir=paths.tables_dir(), instance=instance)
    except (ImportFormatError, ValueError) as exc:
        print(f"warmth import-outputs: {exc}; nothing was imported", file=sys.stderr)
        return 2
    finally:
        instance.dispose()
    print(f"imported {summary['rows']} rows from {summary['files']} files: models {summary['models']}, "
          f"checkpoints original and {checkpoint}")
    return 0


def inspect_command(model: str | None, checkpoint: str | None, port: int, ready_timeout_s: float) -> int:
    """`warmth inspect`: Inspect View on the logs of `inspect_logs` (all, a model's, a checkpoint's), bound to
    127.0.0.1, until Ctrl-C or SIGTERM; prints the URL once the viewer listens."""
    import signal
    import subprocess

    from warmth_assets.lib import inspect_view, paths

    try:
        folder = inspect_view.log_dir(paths.warmth_home(), model, checkpoint)
    except ValueError as exc:
        print(f"warmth inspect: {exc}", file=sys.stderr)
        return 2
    port = port or inspect_view.free_port()
    # The viewer's own lines go to stderr: stdout holds our one URL line, for a script to read.
    process = subprocess.Popen(inspect_view.view_argv(folder, port), start_new_session=True, stdout=sys.stderr)

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        inspect_view.wait_ready(process, port, ready_timeout_s)
        print(f"Inspect View: http://{inspect_view.HOST}:{port}/ (logs under {folder}); Ctrl-C stops it", flush=True)
        code = process.wait()
        print(f"warmth inspect: the viewer exited with code {code}", file=sys.stderr)
        return code or 1
    except RuntimeError as exc:
        print(f"warmth inspect: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        inspect_view.stop(process)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def estimate_command() -> int:
    """Print the dry-run cost of the configured study (what the cost_estimate asset stores)."""
    from resources.warehouses import default_warehouse
    from warmth_assets.assets.operations import warehouse_counts
    from warmth_assets.lib import costs
    from warmth_assets.lib.config import config_path, load_config

    settings = load_config()
    counts = warehouse_counts(default_warehouse(settings))
    frame = costs.study_estimate(settings, counts)
    budget = settings.operations.budget_usd
    print(f"Dry run of {config_path()} (texts from the warehouse: {', '.join(sorted(counts)) or 'none yet'})")
    print(frame.to_string(index=False))
    total = frame["usd"].sum()
    print(f"total: ${total:,.2f}; budget: " + (f"${budget:,.2f}" + (" (OVER)" if total > budget else "")
                                                if budget else "none ([operations] budget_usd = 0)"))
    return 0


def stale_command(select: list[str] | None) -> int:
    """`warmth stale`: per asset, the materialised partitions Dagster marks stale under the configuration file as it
    is now, and why; exit status 1 when any is, 0 when none (for scripts), 2 for an unknown asset."""
    import dagster as dg
    from dagster._core.definitions.assets.graph.asset_graph import AssetGraph

    from warmth_assets import staleness
    from warmth_assets.build import build_defs
    from warmth_assets.code_versions import READS
    from warmth_assets.lib import paths, stale_report
    from warmth_assets.lib.config import load_config

    settings = load_config()
    graph = AssetGraph.from_assets(list(build_defs(settings).assets))
    known = {key.to_user_string(): key for key in graph.materializable_asset_keys}
    unknown = [name for name in select or [] if name not in known]
    if unknown:
        print(f"warmth stale: unknown asset {unknown[0]!r}; assets: {', '.join(sorted(known))}", file=sys.stderr)
        return 2
    home = paths.dagster_home()
    if not home.is_dir():
        print(f"nothing stale: no Dagster instance in {home} (DAGSTER_HOME) yet, nothing materialised")
        return 0
    instance = dg.DagsterInstance.from_config(str(home))
    try:
        found = staleness.scan(instance, graph, [known[name] for name in select] if select else None,
                               reads=lambda asset: READS[asset].settings if asset in READS else ())
    finally:
        instance.dispose()
    print("\n".join(stale_report.report_lines(found)))
    return 1 if any(asset.stale for asset in found) else 0


def cluster_command(action: str, workers: int, netns: str, rest: list[str]) -> int:
    """`warmth cluster up|status|down|exec`: the scale-out stack of lib/local_cluster under WARMTH_HOME."""
    import os
    import shlex

    from warmth_assets.lib import local_cluster, paths

    home = paths.warmth_home()
    try:
        if action == "up":
            state, password = local_cluster.up(home, workers, netns=netns)
            print("# the cluster is up; run what uses it in its namespace: warmth cluster exec -- CMD")
            for name, value in state.environment(password).items():
                print(f"export {name}={shlex.quote(value)}")
            return 0
        if action == "exec":
            state = local_cluster.read_state(home)
            if state is None:
                print(f"warmth cluster: no cluster under {home / 'cluster'}: `warmth cluster up` first",
                      file=sys.stderr)
                return 2
            command = rest[1:] if rest[:1] == ["--"] else rest
            if not command:
                print("warmth cluster exec: name the command, e.g. warmth cluster exec -- make dev", file=sys.stderr)
                return 2
            argv = local_cluster.in_netns(state.netns, command)
            os.execvp(argv[0], argv)
        lines = local_cluster.status(home) if action == "status" else local_cluster.down(home)
    except local_cluster.ClusterError as exc:
        print(f"warmth cluster {action}: {exc}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warmth", description=__doc__)
    parser.add_argument("--debug", action="store_true", help="show the traceback of any error")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="materialise every stage of the configured study (see make demo)")
    commands.add_parser("estimate", help="dry run: calls, tokens and dollars of the configured study's API work")
    stale = commands.add_parser("stale", help="list the partitions Dagster marks stale (a changed setting, an updated "
                                "input) and why; exit status 1 if any, 0 if none")
    stale.add_argument("--select", action="append", metavar="ASSET", help="only this asset (repeatable); default: all")
    command = commands.add_parser("vllm-command", help="print the command that serves a model's checkpoints with vLLM")
    command.add_argument("model")
    command.add_argument("--gpu", action="store_true", help="the CUDA build's `vllm serve` form (default: the CPU "
                         "build of .venv-serving)")
    command.add_argument("--host", default=None, help="default 127.0.0.1 (CPU), 0.0.0.0 (--gpu); beyond loopback the "
                         "command requires VLLM_API_KEY in its environment")
    command.add_argument("--port", type=int, default=8000)
    serve = commands.add_parser("serve", help="serve a model's checkpoints with vLLM's CPU build (.venv-serving) "
                                "until Ctrl-C")
    serve.add_argument("model")
    serve.add_argument("--host", default="127.0.0.1", help="beyond loopback, export VLLM_API_KEY first (the server "
                       "then requires it)")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--ready-timeout", type=float, default=300.0, help="seconds to wait for /v1/models")
    imports = commands.add_parser("import-outputs", help="store released result files as generations and judgments")
    imports.add_argument("directory")
    imports.add_argument("--format", choices=["warm_ai_2025"], default="warm_ai_2025")
    imports.add_argument("--warm-checkpoint", default=None,
                         help="checkpoint of the warm outputs (default: warm-e<[finetune] selected_epoch>)")
    view = commands.add_parser("inspect", help="open Inspect View on the answers' Inspect logs (127.0.0.1) until Ctrl-C")
    view.add_argument("--model", default=None, help="only this model's logs")
    view.add_argument("--checkpoint", default=None, help="only this checkpoint's logs (with --model)")
    view.add_argument("--port", type=int, default=0, help="default: a free port")
    view.add_argument("--ready-timeout", type=float, default=60.0, help="seconds to wait for the viewer")
    cluster = commands.add_parser("cluster", help="Postgres and a Ray head with worker nodes on this machine, in a "
                                  "network namespace of their own (as root): up, status, down, exec -- CMD")
    cluster.add_argument("action", choices=["up", "status", "down", "exec"])
    cluster.add_argument("--workers", type=int, default=2, help="up: Ray worker nodes (1 CPU, 1 logical GPU each)")
    cluster.add_argument("--netns", default="warmth", help="up: the network namespace holding only loopback")
    cluster.add_argument("rest", nargs="*", help="exec: the command, after --")
    args = parser.parse_args(argv)
    try:
        return run_command(args)
    except user_mistakes() as exc:
        if args.debug:
            raise
        # One line a person can act on; the traceback only with --debug (a real fault keeps its traceback).
        said = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"warmth {args.command}: {said}", file=sys.stderr)
        return 2


def user_mistakes() -> tuple[type[BaseException], ...]:
    """What a user's input causes (bad or missing configuration, an unknown model, a missing file or folder)."""
    from warmth_assets.lib.config import ConfigError
    from resources.lake import LakeUnavailable
    from resources.warehouse import WarehouseTooNew
    from warmth_assets.lib.vllm_server import ServingKeyMissing

    # A warehouse file from a newer DuckDB, a lake whose Postgres is not running: the message says what to do.
    return (ConfigError, FileNotFoundError, NotADirectoryError, ServingKeyMissing, WarehouseTooNew, LakeUnavailable)


def run_command(args) -> int:
    if args.command == "cluster":
        return cluster_command(args.action, args.workers, args.netns, args.rest)
    if args.command == "import-outputs":
        return import_command(args.directory, args.warm_checkpoint)
    if args.command == "inspect":
        return inspect_command(args.model, args.checkpoint, args.port, args.ready_timeout)
    if args.command == "estimate":
        return estimate_command()
    if args.command == "stale":
        return stale_command(args.select)
    if args.command == "demo":
        from warmth_assets.demo import main as demo

        return demo()
    if args.command == "serve":
        return serve_command(args.model, args.host, args.port, args.ready_timeout)
    print(vllm_command(args.model, gpu=args.gpu, host=args.host, port=args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
