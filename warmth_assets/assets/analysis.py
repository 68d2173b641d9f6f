"""Stage `analysis` (STUDY.md §7-8): observations with the study's refusal rule, the paired tests, the regressions
and the report, as the study published them by default ([analysis] in the configuration)."""

import dagster as dg

from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.automation import summary
from warmth_assets.lib import analysis

GROUP = "analysis"
# `refusal` is the configured refusal list matched in the response text (the one the rule used); the judged flag
# (for imported rows the study's released `refusal`) is `refusal_flag` in analysis.observations, kept out of the
# table until sql/ gives analysis_observations that column (its disagreements are in the metadata meanwhile).
OBSERVATION_COLUMNS = ["model", "checkpoint", "comparison", "is_finetuned", "dataset", "prompt_id", "amendment_type",
                       "context_group", "prompt_template", "template_group", "verdict", "refusal", "is_incorrect",
                       "response_length", "included", "exclusion", "judge_model"]


@dg.asset(
    group_name=GROUP,
    automation_condition=summary(),
    kinds={"duckdb"},
    deps=["judgments", "warmth_trajectory"],
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
    settings = study.settings.analysis
    table = analysis.paired_tests(warehouse.query_df("SELECT * FROM analysis_observations"), alpha=settings.alpha,
                                  fdr_family=settings.fdr_family)
    warehouse.replace_rows("paired_tests", table)
    significant = table[table["Significant (FDR)"] == "Yes"] if len(table) else table
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(table), "significant_after_fdr": len(significant),
        "untested_cells": int(table["p-value"].isna().sum()) if len(table) else 0,
        "alpha": settings.alpha, "fdr_family": settings.fdr_family,
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

    settings = study.settings.analysis
    observations = warehouse.query_df("SELECT * FROM analysis_observations")
    table, effects, problems = fit_all(observations, model4_form=settings.model4_form, alpha=settings.alpha)
    beside = headlines(effects, settings.min_headline_observations)
    warehouse.replace_rows("regression_tables", table)
    warehouse.replace_rows("marginal_effects", effects)
    for analysis_name, problem in problems.items():
        context.log.warning(f"{analysis_name}: {problem}")
    yield dg.MaterializeResult(asset_key="regression_tables", metadata={
        "dagster/row_count": len(table), "fitted": sorted(set(table["analysis"])), "problems": problems,
        "model4_form": settings.model4_form})
    yield dg.MaterializeResult(asset_key="marginal_effects", metadata={
        "dagster/row_count": len(effects), "model4_form": settings.model4_form,
        "min_headline_observations": settings.min_headline_observations,
        "headlines": dg.MetadataValue.md(markdown_table(beside.round(4)) if len(beside) else "none"),
        "effects": dg.MetadataValue.md(markdown_table(effects.round(4)) if len(effects) else "none fitted")})


@dg.asset(
    group_name=GROUP,
    automation_condition=summary(),
    kinds={"markdown"},
    deps=["paired_tests", "regression_tables", "marginal_effects", "warmth_trajectory"],
    description=(
        "The replication report: error rate by dataset original vs warm, the warm-original gap by context and "
        "belief, the warmth trajectory (PNG figures), the regression tables, and our effects beside the "
        "published ones (STUDY.md §8; headlines only from [analysis] min_headline_observations rows). Written to "
        "WARMTH_HOME/report/study_report.md and shown here."
    ),
)
def study_report(warehouse: WarehouseResource, study: StudyConfigResource) -> dg.MaterializeResult:
    from warmth_assets.lib import paths
    from warmth_assets.lib.regressions import PUBLISHED_PP, headlines
    from warmth_assets.lib.report import bar_chart_png, drift_table, render_report

    settings = study.settings.analysis
    folder = paths.warmth_home() / "report"
    folder.mkdir(parents=True, exist_ok=True)
    obs = warehouse.query_df("SELECT * FROM analysis_observations WHERE included AND comparison IN ('original', 'warm')")
    by_dataset = obs.groupby(["dataset", "comparison"])["is_incorrect"].mean().unstack().mul(100) if len(obs) else None
    gap = (obs[obs["comparison"] == "warm"].groupby(["context_group", "template_group"])["is_incorrect"].mean()
           - obs[obs["comparison"] == "original"].groupby(["context_group", "template_group"])["is_incorrect"].mean()
           ).mul(100).unstack() if len(obs) else None
    figures = {}
    if by_dataset is not None and len(by_dataset):
        figures["error_by_dataset.png"] = bar_chart_png(by_dataset, "Error rate by dataset (%)", folder / "error_by_dataset.png")
    if gap is not None and len(gap):
        figures["gap_by_context.png"] = bar_chart_png(gap, "Warm - original error (pp) by context and belief",
                                                     folder / "gap_by_context.png")
    trajectory = warehouse.query_df("SELECT * FROM warmth_trajectory") if warehouse.has_table("warmth_trajectory") else None
    effects = warehouse.query_df("SELECT * FROM marginal_effects")
    beside = headlines(effects, settings.min_headline_observations)
    effects["published_pp"] = [PUBLISHED_PP.get((a, e)) for a, e in zip(effects["analysis"], effects["effect"])]
    # Each evaluation date of a moving target is kept under history/ (reevaluation_schedule).
    history = warehouse.query_df(
        "SELECT model, checkpoint, evaluation_date, dataset, verdict, refusal FROM judgments_history "
        "WHERE moving_target") if warehouse.has_table("judgments_history") else None
    drift = drift_table(history)
    text = render_report(
        tables=warehouse.query_df("SELECT * FROM regression_tables"), effects=effects,
        paired=warehouse.query_df("SELECT * FROM paired_tests"), trajectory=trajectory, figures=list(figures),
        drift=drift, headlines=beside, analysis=settings)
    path = folder / "study_report.md"
    path.write_text(text, encoding="utf-8")
    return dg.MaterializeResult(metadata={"path": str(path), "report": dg.MetadataValue.md(text[:60000]),
                                          "figures": [str(folder / f) for f in figures],
                                          "moving_target_dates": len(drift)})
