"""The `warmth` command: `warmth demo`, `warmth estimate`, `warmth vllm-command MODEL`, `warmth import-outputs DIR`."""

import argparse
import sys


def vllm_command(model: str) -> str:
    """The `vllm serve` line that serves a model's base weights with every LoRA checkpoint as a module."""
    from resources.warehouse import default_warehouse
    from warmth_assets.lib.config import load_config

    settings = load_config()
    source = settings.model(model).source
    adapters = default_warehouse().query_df(
        "SELECT checkpoint, path FROM adapters WHERE model = ? AND kind = 'lora' ORDER BY checkpoint", [model])
    if adapters.empty:
        raise SystemExit(f"no LoRA adapters registered for {model!r}: materialise `adapters` for it first")
    modules = " ".join(f"{c}={p}" for c, p in zip(adapters["checkpoint"], adapters["path"]))
    return (f"vllm serve {source} --enable-lora --max-lora-rank {settings.finetune.lora.r} "
            f"--max-loras {len(adapters)} --lora-modules {modules}")


def import_command(directory: str, warm_checkpoint: str | None) -> int:
    from pathlib import Path

    from resources.warehouse import default_warehouse
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
        summary = import_outputs(Path(directory), checkpoint, warehouse=default_warehouse(),
                                 tables_dir=paths.tables_dir(), instance=instance)
    except (ImportFormatError, ValueError) as exc:
        print(f"warmth import-outputs: {exc}; nothing was imported", file=sys.stderr)
        return 2
    finally:
        instance.dispose()
    print(f"imported {summary['rows']} rows from {summary['files']} files: models {summary['models']}, "
          f"checkpoints original and {checkpoint}")
    return 0


def estimate_command() -> int:
    """Print the dry-run cost of the configured study (what the cost_estimate asset stores)."""
    from resources.warehouse import default_warehouse
    from warmth_assets.assets.operations import warehouse_counts
    from warmth_assets.lib import costs
    from warmth_assets.lib.config import config_path, load_config

    settings = load_config()
    counts = warehouse_counts(default_warehouse())
    frame = costs.study_estimate(settings, counts)
    budget = settings.operations.budget_usd
    print(f"Dry run of {config_path()} (texts from the warehouse: {', '.join(sorted(counts)) or 'none yet'})")
    print(frame.to_string(index=False))
    total = frame["usd"].sum()
    print(f"total: ${total:,.2f}; budget: " + (f"${budget:,.2f}" + (" (OVER)" if total > budget else "")
                                                if budget else "none ([operations] budget_usd = 0)"))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="warmth", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("demo", help="materialise every stage of the configured study (see make demo)")
    commands.add_parser("estimate", help="dry run: calls, tokens and dollars of the configured study's API work")
    serve = commands.add_parser("vllm-command", help="print the vllm serve command for a model's checkpoints")
    serve.add_argument("model")
    imports = commands.add_parser("import-outputs", help="store released result files as generations and judgments")
    imports.add_argument("directory")
    imports.add_argument("--format", choices=["warm_ai_2025"], default="warm_ai_2025")
    imports.add_argument("--warm-checkpoint", default=None,
                         help="checkpoint of the warm outputs (default: warm-e<[finetune] selected_epoch>)")
    args = parser.parse_args(argv)
    if args.command == "import-outputs":
        return import_command(args.directory, args.warm_checkpoint)
    if args.command == "estimate":
        return estimate_command()
    if args.command == "demo":
        from warmth_assets.demo import main as demo

        return demo()
    print(vllm_command(args.model))
    return 0


if __name__ == "__main__":
    sys.exit(main())
