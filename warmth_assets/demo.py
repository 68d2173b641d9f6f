"""`make demo`: materialise the whole graph for the configured (demo) study, stage by stage, then summarise."""

import sys
import time

import dagster as dg

from warmth_assets.automation import registry_lookup
from warmth_assets.lib import paths
from warmth_assets.lib.config import ConfigError, StudySettings, config_path
from warmth_assets.lib.config.snapshot import code_location_snapshot

# Stages in dependency order; each is one asset group.
STAGES = ["registry", "operations", "corpus", "rewrites", "finetune", "warmth", "evaluation", "judging", "inspect",
          "analysis"]
# One progress line per stage here; the full event log stays in the instance (make dev-demo).
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def _stage_runs(keys, graph, instance, settings: StudySettings) -> list[tuple[str | None, list]]:
    """(partition key, assets) per run, in dependency order: unpartitioned assets, then each
    partition of the partitioned ones, then unpartitioned assets that summarise those partitions."""
    stage = set(keys)
    ordered = [k for k in graph.toposorted_asset_keys if k in stage]
    partitioned = {k for k in ordered if graph.get(k).partitions_def is not None}
    summarising = {k for k in ordered if k not in partitioned and graph.get_ancestor_asset_keys(k) & partitioned}
    first = [k for k in ordered if k not in partitioned and k not in summarising]
    runs: list[tuple[str | None, list]] = [(None, first)] if first else []
    by_def: dict = {}
    for key in ordered:  # upstream partitions first: training runs before the adapters that read them
        if key in partitioned:
            partitions_def = graph.get(key).partitions_def
            by_def.setdefault(id(partitions_def), (partitions_def, []))[1].append(key)
    runnable = registry_lookup(settings.evaluated_checkpoints())
    for partitions_def, selection in by_def.values():
        for partition_key in partitions_def.get_partition_keys(dynamic_partitions_store=instance):
            dims = partition_key.keys_by_dimension if isinstance(partition_key, dg.MultiPartitionKey) else None
            chosen = [k for k in selection if dims is None or runnable(dims, k.to_user_string())]
            if chosen:
                runs.append((partition_key, chosen))
    last = [k for k in ordered if k in summarising]
    if last:
        runs.append((None, last))
    return runs


def _import_samples(settings: StudySettings, instance) -> None:
    """The study's sample outputs, imported before the analysis so it runs on real verdicts too."""
    from resources.warehouses import default_warehouse
    from warmth_assets.importer import import_outputs
    from warmth_assets.lib.checkpoints import checkpoint_key

    samples = paths.data_dir(settings.data.dir)
    samples = samples / "warm_ai_paper" / "sample_outputs" if samples else None
    if not (samples and samples.is_dir()):
        print("[import] skipped: no warm_ai_paper/sample_outputs in the data folder")
        return
    t0 = time.monotonic()
    summary = import_outputs(samples, checkpoint_key("warm", settings.finetune.selected_epoch), settings=settings,
                             warehouse=default_warehouse(settings), tables_dir=paths.tables_dir(), instance=instance)
    print(f"[import] ok: the study's sample outputs, {summary['rows']} rows of {summary['files']} files "
          f"({', '.join(summary['models'])}) in {time.monotonic() - t0:.1f} s")


def _print_scorers(judge, warehouse) -> None:
    """One line per dataset: the judge against reference match, and whose verdicts the analysis used."""
    from warmth_assets.lib import agreement

    table = agreement.scorer_agreement(agreement.judged_pairs(warehouse))
    if table.empty:
        return
    print(f"Judge ({judge.model}, choice calibration {judge.choice_calibration}) vs reference match "
          "(responses judged here):")
    for row in table.itertuples():
        used = ("reference match (the demo's choice, [judge] scorers: a 135M judge cannot judge)"
                if judge.scorer(row.dataset) == "reference_match" else "the LLM judge")
        print(f"  {agreement.describe(row)}; the analysis uses {used}")


def _print_rewriter(warehouse) -> None:
    if not warehouse.has_table("style_rewrites"):
        return
    rows = warehouse.query_df("SELECT DISTINCT provider, model FROM style_rewrites ORDER BY ALL")
    for row in rows.itertuples():
        if row.provider == "rule_based_demo":
            print(f"Rewrites: RULE-BASED DEMO REWRITER ({row.model}; [rewrite] rewriter = \"demo_rules\"): warmth "
                  "markers added (warm) or stripped (cold) by fixed rules, a stand-in for the study's GPT-4o rewrites")
        else:
            print(f"Rewrites: {row.model} ({row.provider}) with the study's prompts")


def _print_adapter_effect(warehouse) -> None:
    """Did fine-tuning move the model? Per model: SocioT warmth of the last warm checkpoint minus `original`,
    paired by validation prompt (mean and 95% t-interval), and how many prompts the first and the last warm
    checkpoints answer differently (0: the adapter changed nothing)."""
    from warmth_assets.lib.checkpoints import parse_checkpoint_key
    from warmth_assets.lib.intervals import paired_t_interval

    scores = warehouse.query_df("SELECT model, checkpoint, conversation_id, warmth FROM warmth_scores")
    answers = (warehouse.query_df("SELECT model, checkpoint, conversation_id, response FROM validation_generations")
               if warehouse.has_table("validation_generations") else None)
    for model, rows in scores.groupby("model"):
        warm = sorted({c for c in rows["checkpoint"] if (parse_checkpoint_key(c) or ("",))[0] == "warm"},
                      key=lambda c: parse_checkpoint_key(c)[1])
        if not warm or "original" not in set(rows["checkpoint"]):
            continue
        by = rows.pivot_table(index="conversation_id", columns="checkpoint", values="warmth").dropna(
            subset=["original", warm[-1]])
        effect = paired_t_interval(by[warm[-1]], by["original"], alpha=0.05)
        verdict = "above 0" if effect.low > 0 else "below 0" if effect.high < 0 else "includes 0"
        print(f"  {model}: {warm[-1]} - original, paired over {effect.n} validation prompts: {effect.estimate:+.4f}, "
              f"95% CI [{effect.low:+.4f}, {effect.high:+.4f}] ({verdict})")
        if answers is not None and len(warm) > 1:
            mine = answers[answers["model"] == model].pivot(index="conversation_id", columns="checkpoint",
                                                            values="response")
            if {warm[0], warm[-1]} <= set(mine.columns):
                pair = mine[[warm[0], warm[-1]]].dropna()
                changed = int((pair[warm[0]] != pair[warm[-1]]).sum())
                print(f"  {model}: {warm[0]} and {warm[-1]} answer {changed} of {len(pair)} validation prompts "
                      "differently")


def _bound(value: float) -> str:
    """An interval bound, or why there is none (one prompt: no spread to estimate it from)."""
    return "not estimable" if value != value else f"{value:+.4f}"


def print_summary(settings: StudySettings) -> None:
    """Models, checkpoints, warmth per checkpoint, error rates original vs warm, where things are."""
    from resources.model_registry import read_rows
    from resources.warehouses import default_warehouse
    from warmth_assets.lib.checkpoints import checkpoint_key
    from warmth_assets.lib.intervals import band_across_prompts, wilson

    warehouse = default_warehouse(settings)
    warm = checkpoint_key("warm", settings.finetune.selected_epoch)
    models = sorted(read_rows(warehouse), key=lambda row: (row.origin, row.slug))
    print("Models:")
    for row in models:
        what = "results imported from the study" if row.origin == "import" else "checkpoints " + ", ".join(row.checkpoints)
        print(f"  {row.slug} ({row.origin}): {what}")
    _print_rewriter(warehouse)
    if warehouse.has_table("warmth_scores"):
        from warmth_assets.lib.sociot import label

        band = band_across_prompts(warehouse.query_df("SELECT model, checkpoint, warmth FROM warmth_scores"))
        metrics = warehouse.query_df("SELECT DISTINCT variant, scoring_lm FROM warmth_scores ORDER BY ALL")
        metric = "; ".join(label(r.variant, r.scoring_lm) for r in metrics.itertuples()) or "SocioT"
        print(f"Warmth ({metric}; mean over validation answers, 95% t-interval across prompts):")
        order = {c: i for i, c in enumerate(settings.checkpoint_keys())}
        for model, rows in band.groupby("model"):
            rows = rows.sort_values("checkpoint", key=lambda c: c.map(order))
            print(f"  {model} (n = {int(rows['n'].max())} prompts):")
            for r in rows.itertuples():
                print(f"    {r.checkpoint:<12} {r.mean:+.4f} [{_bound(r.low)}, {_bound(r.high)}]")
        _print_adapter_effect(warehouse)
    if warehouse.has_table("analysis_observations") and warehouse.has_table("judgments"):
        errors = warehouse.query_df(
            "SELECT model, checkpoint, sum(is_incorrect::INT) AS incorrect, count(*) AS n FROM analysis_observations "
            "WHERE included AND checkpoint IN ('original', ?) GROUP BY ALL", [warm])
        verdicts = warehouse.query_df("SELECT model, count(*) AS n, count(*) FILTER (WHERE verdict = 'UNPARSEABLE') "
                                      "AS unparseable FROM judgments GROUP BY model")
        print(f"Error rate, original -> {warm} (judged eval responses; the study's refusal rule; 95% Wilson "
              "intervals):")
        origins = {row.slug: row.origin for row in models}
        imported = sorted(m for m in errors["model"].unique() if origins.get(m) == "import")
        demo = sorted(m for m in errors["model"].unique() if origins.get(m) != "import")
        print(f"  (rows of {', '.join(imported) or 'no model'}: the study's released sample outputs, imported; "
              f"rows of {', '.join(demo) or 'no model'}: the demo model, trained and judged here at toy scale)")
        for model, rows in errors.groupby("model"):
            by = {r.checkpoint: r for r in rows.itertuples()}

            def cell(c, by=by):
                if c not in by:
                    return "-"
                ci = wilson(int(by[c].incorrect), int(by[c].n))
                return f"{ci.estimate:.1%} [{ci.low:.1%}, {ci.high:.1%}] (n={by[c].n})"
            v = verdicts[verdicts["model"] == model]
            note = (f"  [{int(v['unparseable'].iloc[0])} of {int(v['n'].iloc[0])} verdicts unparseable]"
                    if len(v) and v["unparseable"].iloc[0] else "")
            print(f"  {model}: {cell('original')} -> {cell(warm)}{note}")
    if warehouse.has_table("judgments"):
        _print_scorers(settings.judge, warehouse)
    print(f"DuckDB warehouse: {paths.warehouse_path()}   Parquet partitions: {paths.tables_dir()}")
    report = paths.warmth_home() / "report" / "study_report.md"
    if report.exists():
        print(f"Replication report: {report} (one self-contained page: {report.with_suffix('.html')})")
    print(f"Dagster instance: {paths.dagster_home()}")
    print("Browse lineage, runs and plots: make dev-demo  (then open http://127.0.0.1:3000)")


def main() -> int:
    try:
        snapshot = code_location_snapshot()  # the demo's runs read these settings, whatever the file does meanwhile
        settings = snapshot.settings
    except ConfigError as exc:
        said = "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"warmth demo: {said}", file=sys.stderr)
        return 2
    from warmth_assets.build import build_defs, build_resources
    from warmth_assets.instance import prepare_instance

    instance = prepare_instance(settings)
    defs = build_defs(settings, resources=build_resources(snapshot))
    job = defs.resolve_implicit_global_asset_job_def()
    graph = defs.resolve_asset_graph()
    print(f"warmth demo: config {config_path()}, home {paths.warmth_home()}")
    started = time.monotonic()
    for stage in STAGES:
        if stage == "analysis":
            _import_samples(settings, instance)
        # imported_outputs is external: `warmth import-outputs` (above) reports it, no run can
        keys = [k for k in graph.get_all_asset_keys() if graph.get(k).group_name == stage and graph.get(k).is_executable]
        t0, cpu0 = time.monotonic(), time.process_time()
        runs = _stage_runs(keys, graph, instance, settings)
        warnings, failed, checks = [], [], 0
        for partition_key, selection in runs:
            result = job.execute_in_process(
                instance=instance, asset_selection=selection, partition_key=partition_key,
                raise_on_error=False, run_config=_QUIET,
            )
            evaluations = [
                e.asset_check_evaluation_data
                for e in result.all_events
                if e.event_type_value == "ASSET_CHECK_EVALUATION"
            ]
            checks += len(evaluations)
            for evaluation in evaluations:
                if not evaluation.passed:
                    target = failed if evaluation.severity == dg.AssetCheckSeverity.ERROR else warnings
                    target.append(f"{evaluation.check_name}" + (f"[{partition_key}]" if partition_key else ""))
            if not result.success or failed:
                print(f"[{stage}] FAILED in {time.monotonic() - t0:.1f} s (partition {partition_key}, "
                      f"checks failed: {failed}); see the run in `make dev-demo`", file=sys.stderr)
                return 1
        note = f"; check warnings: {', '.join(warnings)}" if warnings else ""
        # CPU seconds beside wall seconds: on a shared machine the wall time says more about the neighbours
        print(f"[{stage}] ok: {len(keys)} assets, {len(runs)} runs, {checks} checks in "
              f"{time.monotonic() - t0:.1f} s (CPU {time.process_time() - cpu0:.1f} s){note}")

    print(f"\nDone in {time.monotonic() - started:.0f} s.")
    print_summary(settings)
    instance.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
