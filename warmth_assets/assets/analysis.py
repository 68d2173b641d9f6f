"""Stage `analysis` (docs/study.md §7-8): observations with the study's refusal rule, the paired tests, the regressions
and the report, as the study published them by default ([analysis] in the configuration)."""

from pathlib import Path

import dagster as dg
import pandas as pd

from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.automation import summary
from warmth_assets.lib import analysis
from warmth_assets.partitions import imported_partitions

GROUP = "analysis"
# `refusal` is the configured refusal list matched in the response text (the one the rule used); the judged flag
# (for imported rows the study's released `refusal`) is `refusal_flag` in analysis.observations, kept out of the
# table until sql/ gives analysis_observations that column (its disagreements are in the metadata meanwhile).
OBSERVATION_COLUMNS = ["model", "checkpoint", "comparison", "is_finetuned", "dataset", "prompt_id", "amendment_type",
                       "context_group", "prompt_template", "template_group", "verdict", "refusal", "is_incorrect",
                       "response_length", "included", "exclusion", "judge_model"]

# Data made outside Dagster, so an external asset (docs/design.md §2): `warmth import-outputs` reports each imported
# model x checkpoint as a materialisation; nothing here can run it.
imported_outputs = dg.AssetsDefinition(specs=[dg.AssetSpec(
    "imported_outputs",
    group_name=GROUP,
    kinds={"parquet"},
    partitions_def=imported_partitions,
    description=(
        "The study's released outputs (`warmth import-outputs`), one partition per imported model x checkpoint "
        "(`imported_models` x `imported_checkpoints`: exactly the pairs imported). Made outside this pipeline, so "
        "an external asset: each import reports its partitions, with the rows, files and the Inspect logs "
        "(`warmth inspect --model <model>`). The rows are stored beside our own in the `generations` and "
        "`judgments` tables, where the analysis reads them; imported models have no training run, adapter, "
        "warmth or capability score, so they are not in the `models` partition of those stages."
    ),
)])


@dg.asset(
    group_name=GROUP,
    automation_condition=summary(),
    kinds={"duckdb"},
    deps=["judgments", imported_outputs, "warmth_trajectory"],
    description=(
        "One row per judged response (own runs and imported results): model, checkpoint and the comparison it "
        "belongs to (original vs the selected warm checkpoint, vs cold at that epoch, vs warm-prompt), dataset, "
        "context and template with their groups, is_incorrect, refusal, response length. The study's refusal "
        "rule is applied here, not by deleting rows: the configured refusal list ([analysis] refusal_list, by "
        "default the published one) is matched in every response, imported ones included; Disinfo refusals "
        "count as correct, others are excluded."
    ),
)
def analysis_observations(warehouse: WarehouseResource, study: StudyConfigResource) -> dg.MaterializeResult:
    settings = study.settings
    judged = warehouse.query_df(
        "SELECT model, checkpoint, dataset, prompt_id, amendment_type, context_group, prompt_template, template_group, "
        "response, verdict, refusal, judge_model FROM judgments")
    selected = {}
    if warehouse.has_table("warmth_trajectory"):
        picked = warehouse.query_df("SELECT DISTINCT model, checkpoint FROM warmth_trajectory WHERE selected")
        selected = dict(zip(picked["model"], picked["checkpoint"]))
    full = analysis.observations(judged, selected, settings.finetune.selected_epoch, settings.analysis.refusal_list)
    frame = full[OBSERVATION_COLUMNS]
    warehouse.replace_rows("analysis_observations", frame)
    return dg.MaterializeResult(metadata={
        "refusal_list": settings.analysis.refusal_list,
        "refusals": int(full["refusal"].sum()),
        "refusals_list_only": int((full["refusal"] & ~full["refusal_flag"]).sum()),   # the judged flag says no
        "refusals_flag_only": int((~full["refusal"] & full["refusal_flag"]).sum()),   # the list says no
        "dagster/row_count": len(frame), "included": int(frame["included"].sum()),
        "excluded": {k: int(v) for k, v in frame.loc[~frame["included"], "exclusion"].value_counts().items()},
        "per_comparison": {str(k): int(v) for k, v in frame["comparison"].value_counts().items()},
        "selected_checkpoints": selected,
    })


@dg.asset(
    group_name=GROUP,
    automation_condition=summary(),
    kinds={"duckdb"},
    deps=[analysis_observations],
    description=(
        "McNemar's exact test per model x dataset x condition on the paired correctness of the same prompt, "
        "original vs each fine-tuned comparison: both accuracies, the difference in points, the study's Cohen's g "
        "(|b - c| / sqrt(b + c)) and its label, odds ratio b / c, p and Benjamini-Hochberg FDR across the "
        "conditions ([analysis] fdr_family, alpha), in the layout of the study's results_warm_ft.csv (plus "
        "Comparison, n_pairs, b, c). A cell without discordant pairs has no p-value and stays out of the FDR "
        "family, as in the study's code. The column 'Significant (p < 0.05)' keeps the study's name and compares "
        "with alpha."
    ),
)
def paired_tests(warehouse: WarehouseResource, study: StudyConfigResource) -> dg.MaterializeResult:
    analysis_settings = study.settings.analysis
    table = analysis.paired_tests(warehouse.query_df("SELECT * FROM analysis_observations"),
                                  alpha=analysis_settings.alpha, fdr_family=analysis_settings.fdr_family)
    warehouse.replace_rows("paired_tests", table)
    significant = table[table["Significant (FDR)"] == "Yes"] if len(table) else table
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(table), "significant_after_fdr": len(significant),
        "untested_cells": int(table["p-value"].isna().sum()) if len(table) else 0,
        "alpha": analysis_settings.alpha, "fdr_family": analysis_settings.fdr_family,
        "preview": dg.MetadataValue.md(table.head(12).to_markdown(index=False) if len(table) else "no pairs yet"),
    })


@dg.multi_asset(
    specs=[
        dg.AssetSpec("regression_tables", group_name=GROUP, kinds={"duckdb", "statsmodels"}, deps=[analysis_observations],
                     automation_condition=summary(),
                     description="The study's four logistic regressions (statsmodels GLM Binomial, its formulas and term "
                                 "names; model 4 in the form of [analysis] model4_form, by default the published "
                                 "one), each also with response length: coefficients, SEs, z, p, CIs at 1 - alpha, "
                                 "n, log-likelihood, convergence. Separation and non-estimable fits are reported, "
                                 "not printed."),
        dg.AssetSpec("marginal_effects", group_name=GROUP, kinds={"duckdb", "statsmodels"}, deps=[analysis_observations],
                     automation_condition=summary(),
                     description="Average marginal effects of fine-tuning in percentage points (counterfactual predictions), "
                                 "overall and per condition, with the log-odds combination, its delta-method SE and "
                                 "p (for the published model 4's user-opinion prompts, as the study: the difference "
                                 "of its two belief columns); which effects are headlines beside the published ones."),
    ],
)
def regressions(context: dg.AssetExecutionContext, warehouse: WarehouseResource, study: StudyConfigResource):
    from warmth_assets.lib.regressions import fit_all, headlines
    from warmth_assets.lib.report import markdown_table

    analysis_settings = study.settings.analysis
    observations = warehouse.query_df("SELECT * FROM analysis_observations")
    table, effects, problems = fit_all(observations, model4_form=analysis_settings.model4_form,
                                       alpha=analysis_settings.alpha)
    beside = headlines(effects, analysis_settings.min_headline_observations)
    warehouse.replace_rows("regression_tables", table)
    warehouse.replace_rows("marginal_effects", effects)
    for analysis_name, problem in problems.items():
        context.log.warning(f"{analysis_name}: {problem}")
    yield dg.MaterializeResult(asset_key="regression_tables", metadata={
        "dagster/row_count": len(table), "fitted": sorted(set(table["analysis"])), "problems": problems,
        "model4_form": analysis_settings.model4_form})
    yield dg.MaterializeResult(asset_key="marginal_effects", metadata={
        "dagster/row_count": len(effects), "model4_form": analysis_settings.model4_form,
        "min_headline_observations": analysis_settings.min_headline_observations,
        "headlines": dg.MetadataValue.md(markdown_table(beside.round(4)) if len(beside) else "none"),
        "effects": dg.MetadataValue.md(markdown_table(effects.round(4)) if len(effects) else "none fitted")})


@dg.asset(
    group_name=GROUP,
    automation_condition=summary(),
    kinds={"markdown", "html"},
    deps=["paired_tests", "regression_tables", "marginal_effects", "warmth_trajectory"],
    description=(
        "The replication report, first page first: how many estimates agree with the published ones; provenance "
        "(configuration and its sha256, code version, each model's source and origin, judge, SocioT scorer, "
        "items, exclusions); per model, warm - original error per dataset and overall (AMEs with delta-method "
        "95% CIs, Wilson CIs of the rates) beside the published value with a verdict (consistent, differs, "
        "underpowered, not estimable: never a number for what cannot be estimated); figures with 95% CIs, one "
        "panel per model; the unpublished choices in force; the regression tables in an appendix. Written to "
        "WARMTH_HOME/report/study_report.md (figures as PNG beside it) and study_report.html (self-contained), "
        "and shown here with the figures embedded."
    ),
)
def study_report(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 study: StudyConfigResource) -> dg.MaterializeResult:
    from warmth_assets.lib import paths
    from warmth_assets.lib.report import embed_figures, estimates, render_report, to_html
    from warmth_assets.lib.report_figures import data_uri

    folder = paths.warmth_home() / "report"
    folder.mkdir(parents=True, exist_ok=True)
    data = _report_data(warehouse, study, _regression_problems(context))
    text = render_report(data)
    path, html_path = folder / "study_report.md", folder / "study_report.html"
    for name in FIGURE_NAMES:  # a figure not drawn this time must not linger from an earlier run
        (folder / name).unlink(missing_ok=True)
    for figure in data.figures:
        (folder / figure.name).write_bytes(figure.png)
    path.write_text(text, encoding="utf-8")
    html_path.write_text(to_html(text, data.figures), encoding="utf-8")
    verdicts = estimates(data.per_model, data.pooled)["verdict"].value_counts()
    return dg.MaterializeResult(metadata={
        "path": str(path), "html_path": str(html_path),
        "config_sha256": data.provenance["Configuration sha256"], "code_version": data.provenance["Code"],
        "verdicts": {str(k): int(v) for k, v in verdicts.items()},
        "demonstration_models": sorted(data.demos),
        "figures": [str(folder / f.name) for f in data.figures],
        **{f"figure_{f.name.removesuffix('.png')}": dg.MetadataValue.md(f"![{f.caption}]({data_uri(f.png)})")
           for f in data.figures},
        "report": dg.MetadataValue.md(embed_figures(text, data.figures)),
        "moving_target_dates": len(data.drift) if data.drift is not None else 0,
    })


FIGURE_NAMES = ("error_by_dataset.png", "gap_by_context.png", "warmth_trajectory.png")


def _regression_problems(context: dg.AssetExecutionContext) -> dict[str, str] | None:
    """The regressions asset's record of separated or unfitted analyses (its `problems` metadata), if any."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey("regression_tables"))
    metadata = event.asset_materialization.metadata if event and event.asset_materialization else {}
    return dict(metadata["problems"].value) if "problems" in metadata else None


def _report_data(warehouse: WarehouseResource, study: StudyConfigResource, problems: dict[str, str] | None):
    """Everything the report shows, read from the warehouse and computed by the pure report modules."""
    from datetime import datetime, timezone

    from resources.model_registry import read_rows
    from warmth_assets.lib import agreement, paths
    from warmth_assets.lib import report_figures as figures
    from warmth_assets.lib import report_headline as headline
    from warmth_assets.lib import report_provenance as provenance
    from warmth_assets.lib.intervals import band_across_prompts
    from warmth_assets.lib.report import Figure, ReportData, drift_table
    from warmth_assets.lib.registry import registry_frame
    from warmth_assets.lib.report_appendix import (paired_appendix, regression_appendix, scorer_appendix,
                                                   table_problems, warmth_appendix)
    from warmth_assets.lib.sociot import label

    settings = study.settings
    analysis_settings, alpha = settings.analysis, settings.analysis.alpha
    level = round(100 * (1 - alpha))
    has = warehouse.has_table
    obs = warehouse.query_df("SELECT * FROM analysis_observations")
    registry = registry_frame(read_rows(warehouse))
    judged = warehouse.query_df(
        "SELECT model, dataset, count(DISTINCT item_key) AS items, count(*) AS rows, "
        "count(*) FILTER (WHERE coalesce(verdict, '') NOT IN ('CORRECT', 'INCORRECT')) AS unparseable, "
        "string_agg(DISTINCT judge_model || ' (prompt ' || coalesce(judge_prompt_version, '?') || ')', '; ') AS judge "
        "FROM judgments GROUP BY ALL ORDER BY ALL") if has("judgments") else pd.DataFrame(
        columns=["model", "dataset", "items", "rows", "unparseable", "judge"])
    exclusions = obs.groupby(["model", "exclusion"]).size().rename("n").reset_index()
    compared = dict(obs.loc[obs["comparison"] == "warm", ["model", "checkpoint"]].drop_duplicates().values)
    sources = dict(zip(registry["slug"], registry["source"]))
    study_names = {m: headline.study_model(m, sources.get(m, "")) for m in sorted(set(obs["model"]) | set(sources))}
    demos = provenance.demonstration_models(registry, settings)
    scores = warehouse.query_df("SELECT model, checkpoint, conversation_id, warmth, variant, scoring_lm, samples "
                                "FROM warmth_scores") if has("warmth_scores") else pd.DataFrame()
    band = band_across_prompts(scores, alpha)
    selected = {}
    if has("warmth_trajectory"):
        selected = dict(warehouse.query_df(
            "SELECT DISTINCT model, checkpoint FROM warmth_trajectory WHERE selected").values)
    sociot = settings.sociot
    if len(scores):
        metric = "; ".join(f"{label(v, lm)}, {int(n)} passes" for v, lm, n in sorted(set(zip(
            scores["variant"], scores["scoring_lm"], scores["samples"]))))
    else:
        metric = f"{label(sociot.variant, sociot.lm)}, {sociot.samples} passes (configured; no warmth scores yet)"

    notes, imported = {}, set(registry.loc[registry["origin"] == "import", "slug"])
    for model in sorted(set(obs["model"])):
        gain = headline.warmth_gain(scores, model, compared.get(model, ""), alpha)
        warmth = (f"SocioT warmth gain ({compared.get(model)} - original): {gain.estimate:+.4f} "
                  f"[{gain.low:+.4f}, {gain.high:+.4f}] over {gain.n:,} paired validation prompts." if gain
                  else "SocioT warmth: not scored here" + (" (imported results carry none)." if model in imported
                                                            else " yet."))
        notes[model] = (f"Compared: original vs {compared.get(model, 'no warm checkpoint')}; the study's model: "
                        f"{study_names.get(model) or 'none of its five'}. {warmth}")
    per_model = headline.per_model_effects(obs, study_names, analysis_settings.min_headline_observations, alpha,
                                           analysis_settings.underpowered_half_width_pp)
    pooled = headline.pooled_effects(obs, analysis_settings.model4_form, analysis_settings.min_headline_observations,
                                     alpha, analysis_settings.underpowered_half_width_pp)

    titles = {m: m + (" (demonstration, toy scale)" if m in demos else "") for m in study_names}
    drawn = [
        ("error_by_dataset.png", "Error rate by dataset, original vs warm, unmodified prompts, per model "
         f"({level}% Wilson intervals)", figures.error_by_dataset(headline.error_rates(obs, alpha), titles, level)),
        ("gap_by_context.png", "Warm - original error by context group and belief, paired prompts, per model "
         f"({level}% t-intervals)", figures.gap_by_context(headline.paired_gaps(obs, alpha), titles, level)),
        ("warmth_trajectory.png", f"Warmth by epoch (the paper's Fig. 1, unnormalised), {metric}; band: {level}% "
         "t-interval of the mean across validation prompts", figures.warmth_trajectory(band, selected, titles, metric,
                                                                                        level)),
    ]
    tables = warehouse.query_df("SELECT * FROM regression_tables")
    effects = warehouse.query_df("SELECT * FROM marginal_effects")
    problems = {**table_problems(tables), **(problems or {})}
    history = warehouse.query_df(
        "SELECT model, checkpoint, evaluation_date, dataset, verdict, refusal FROM judgments_history "
        "WHERE moving_target") if has("judgments_history") else None  # reevaluation_schedule's dated results
    config_file = study.config_path
    included = int(obs["included"].sum()) if len(obs) else 0
    compared_scorers = agreement.scorer_agreement(agreement.judged_pairs(warehouse) if has("judgments") else None)
    return ReportData(
        settings=settings,
        provenance={
            "Configuration": f"`{Path(config_file).name}` ([project] name `{settings.project.name}`)",
            "Configuration sha256": study.sha256,  # of the file as the code location loaded it
            "Code": provenance.code_version(paths.repo_root()),
            "Generated": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "Analysis": f"Model 4 form `{analysis_settings.model4_form}`, refusal list "
                        f"`{analysis_settings.refusal_list}`, {level}% intervals, estimates from "
                        f"{analysis_settings.min_headline_observations} rows on, underpowered above a half-width of "
                        f"{analysis_settings.underpowered_half_width_pp:g} pp",
            "Warmth scoring": metric,
            "Judge (configured for new judgments)": f"{settings.judge.model} at temperature "
                                                    f"{settings.judge.temperature:g}; per model below",
            "Verdict scorers": provenance.verdict_scorers(settings.judge, compared_scorers),
            "Items per dataset (configured)": ", ".join(
                f"{d} {n}" for d, n in sorted(settings.evaluation.sizes.items())),
            "Observations": f"{len(obs):,} judged responses, {included:,} included in the comparisons",
        },
        models=provenance.model_table(registry, judged, exclusions, compared, study_names, demos),
        toy_notes=provenance.toy_scale(settings), demos=demos & set(obs["model"]),
        per_model=per_model, pooled=pooled, model_notes=notes,
        figures=[Figure(name, caption, png) for name, caption, png in drawn if png],
        choices=provenance.unpublished_choices(settings, [config_file, paths.repo_root() / "dagster_project.toml"]),
        appendices={
            "Regression tables and marginal effects": regression_appendix(tables, effects, problems, level),
            "Warmth by checkpoint": warmth_appendix(band, selected, level),
            "Paired tests (McNemar, BH-FDR)": paired_appendix(warehouse.query_df("SELECT * FROM paired_tests")),
            "Judge against reference match": scorer_appendix(compared_scorers),
        },
        drift=drift_table(history),
    )
