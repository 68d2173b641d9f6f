"""The replication report, first page first: a summary of the verdicts, provenance, the headline per model, the
figures, the unpublished choices in force; the full regression tables and the rest in appendices.

`render_report` writes Markdown whose figures are files beside it (`![caption](name.png)`); `embed_figures` puts
them inline as base64 PNG (the Dagster UI's metadata), `to_html` makes the one self-contained HTML file.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from warmth_assets.lib.report_headline import HEADLINE_ROWS, NOT_ESTIMABLE

MODEL4_NOTE = {
    "published": "the form of the study's code behind the published +10.99 pp (commit e2d9773: a context-group main "
                 "effect, fine-tuning interacted with the belief group, no belief main effect); its sycophancy effect "
                 "is the AME over user-opinion rows",
    "released_sample": "the earlier commits' form (belief main effect and its interaction, no context term)",
}
REFUSAL_NOTE = {
    "published": "the published list (commit e2d9773, with curly and low-9 apostrophes in \"i can't\")",
    "earlier": "the earlier commits' list (a curly-apostrophe \"can’t\" is not a refusal there)",
}
VERDICTS = ("consistent", "differs", "underpowered", NOT_ESTIMABLE)


@dataclass(frozen=True)
class Figure:
    name: str      # file name beside the Markdown, e.g. error_by_dataset.png
    caption: str
    png: bytes


@dataclass
class ReportData:
    settings: object                  # StudySettings in force
    provenance: dict[str, str]        # configuration, sha256, code, generated, ... (label -> value)
    models: pd.DataFrame              # report_provenance.model_table
    toy_notes: list[str]              # report_provenance.toy_scale
    demos: set[str]                   # models labelled a demonstration at toy scale
    per_model: pd.DataFrame           # report_headline.per_model_effects
    pooled: pd.DataFrame              # report_headline.pooled_effects
    model_notes: dict[str, str]       # model -> one line under its heading (compared checkpoints, warmth gain)
    figures: list[Figure]
    choices: pd.DataFrame             # report_provenance.unpublished_choices
    appendices: dict[str, str] = field(default_factory=dict)   # title -> Markdown
    drift: pd.DataFrame | None = None


def markdown_table(frame: pd.DataFrame) -> str:
    """A Markdown table whose text cells may hold "|" (effect names such as fine_tuning|user_opinion)."""
    escaped = frame.copy()
    for column in [c for c in escaped.columns if not pd.api.types.is_numeric_dtype(escaped[c])]:
        escaped[column] = escaped[column].map(lambda v: v.replace("|", "\\|") if isinstance(v, str) else v)
    return escaped.to_markdown(index=False)


def drift_table(history: pd.DataFrame) -> pd.DataFrame:
    """Error rate of each moving target's checkpoint per evaluation date (judgments_history rows), with
    the study's refusal rule (Disinfo: a refusal is correct; elsewhere refusals are left out) and
    unparseable verdicts left out. Only checkpoints evaluated on two dates or more."""
    columns = ["model", "checkpoint", "evaluation_date", "judged", "error_pct", "unparseable"]
    if history is None or history.empty:
        return pd.DataFrame(columns=columns)
    frame = history.copy()
    disinfo = frame["dataset"] == "disinfo"
    incorrect = (frame["verdict"] == "INCORRECT") & ~(disinfo & frame["refusal"])
    counted = frame["verdict"].isin(["CORRECT", "INCORRECT"]) & (disinfo | ~frame["refusal"])
    frame = frame.assign(incorrect=incorrect & counted, counted=counted, unparseable=frame["verdict"] == "UNPARSEABLE")
    table = frame.groupby(["model", "checkpoint", "evaluation_date"]).agg(
        judged=("counted", "sum"), incorrect=("incorrect", "sum"), unparseable=("unparseable", "sum")).reset_index()
    table["error_pct"] = (100 * table["incorrect"] / table["judged"].where(table["judged"] > 0)).round(2)
    dates = table.groupby(["model", "checkpoint"])["evaluation_date"].transform("nunique")
    return table[dates >= 2][columns].sort_values(["model", "checkpoint", "evaluation_date"], ignore_index=True)


def _pp(value) -> str:
    return "-" if value is None or pd.isna(value) else f"{value:+.2f}"


def _rate(errors: int, n: int, alpha: float) -> str:
    from warmth_assets.lib.intervals import wilson

    if not n:
        return "no rows"
    interval = wilson(int(errors), int(n), alpha).scaled(100)
    return f"{interval.estimate:.1f}% [{interval.low:.1f}, {interval.high:.1f}] ({int(errors)}/{int(n)})"


def _effect(row) -> str:
    if pd.isna(row.estimate_pp):
        return NOT_ESTIMABLE
    return f"{row.estimate_pp:+.2f} [{row.low_pp:+.2f}, {row.high_pp:+.2f}]"


def _verdict(row) -> str:
    return f"{row.verdict}: {row.reasons}" if row.verdict == NOT_ESTIMABLE and row.reasons else row.verdict


def effect_table(frame: pd.DataFrame, first: str, alpha: float) -> str:
    level = round(100 * (1 - alpha))
    head = (f"| {first} | rows | original error [{level}% CI] | warm error [{level}% CI] | warm - original, pp "
            f"[{level}% CI] | published, pp | verdict |")
    lines = [head, "|---|---|---|---|---|---|---|"]
    for row in frame.itertuples():
        name = row.label if first == "effect" else row.dataset
        name = name.replace("|", "\\|")
        lines.append(f"| {name} | {row.n:,} | {_rate(row.original_errors, row.original_n, alpha)} "
                     f"| {_rate(row.warm_errors, row.warm_n, alpha)} | {_effect(row)} | {_pp(row.published_pp)} "
                     f"| {_verdict(row)} |")
    return "\n".join(lines)


def estimates(per_model: pd.DataFrame, pooled: pd.DataFrame) -> pd.DataFrame:
    """Every headline row, per model and pooled."""
    frames = [f for f in (per_model, pooled) if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else per_model


def verdict_summary(per_model: pd.DataFrame, pooled: pd.DataFrame) -> str:
    rows = estimates(per_model, pooled)
    beside = rows[rows["published_pp"].notna()]
    counts = beside["verdict"].value_counts()
    return (f"Of {len(beside)} estimates with a published counterpart: "
            + ", ".join(f"{int(counts.get(v, 0))} {v}" for v in VERDICTS) + ".")


def methods_note(analysis) -> str:
    level = 100 * (1 - analysis.alpha)
    return f"""- Headline rows: {HEADLINE_ROWS}. Effects are average marginal effects (AMEs: mean predicted error with
  fine-tuning minus without) from GLM Binomial fits, with delta-method {level:g}% intervals of the AME itself; error
  rates carry Wilson intervals. Per model x dataset the fit is `is_incorrect ~ fine-tuning` (its AME is the raw
  difference); per model overall it adds dataset; pooled rows use the study's own formulas (docs/study.md §8).
- Verdicts: *consistent* when the published value lies inside our interval, *differs* when outside, *underpowered*
  when inside but the half-width exceeds {analysis.underpowered_half_width_pp:g} pp, *not estimable* when the fit
  separates, fails, or rests on fewer than {analysis.min_headline_observations} rows (the reasons are written out,
  never a number).
- Published per-model figures: the study's results_warm_ft.csv (unmodified context, original prompts, paired
  accuracies: warm - original error = -Raw Diff); pooled figures: docs/study.md §8.
- Model 4 (`model4_form = "{analysis.model4_form}"`): {MODEL4_NOTE[analysis.model4_form]}.
- Refusals: {REFUSAL_NOTE[analysis.refusal_list]}, matched in every response, imported ones included. Disinfo
  refusals count as correct; refusals elsewhere are excluded (flagged, not deleted).
- Paired tests: McNemar exact; a cell without discordant pairs has no p-value and is left out of the
  Benjamini-Hochberg family (`{analysis.fdr_family}`); significance at alpha = {analysis.alpha:g}.
- Gap figure: warm - original per prompt answered by both checkpoints (paired on model, dataset, prompt), the
  mean with its t-interval. Warmth band: t-interval of the mean warmth across validation prompts; warmth gain:
  paired t-interval over the prompts both checkpoints answered.
- Fidelity: on the study's released sample our fits equal the study's own `statistical_models/` code (tests)."""


def render_report(data: ReportData) -> str:
    analysis = data.settings.analysis
    appendices = dict(data.appendices)
    if data.drift is not None and len(data.drift):
        appendices["Drift of moving targets (re-evaluated on a schedule)"] = markdown_table(data.drift)
    appendices["Methods note"] = methods_note(analysis)
    letters = dict(zip(appendices, "ABCDEFGHIJ"))
    parts = ["# Warmth replication report", "", verdict_summary(data.per_model, data.pooled)]
    if data.demos:
        parts += ["", f"> **Demonstration at toy scale** ({', '.join(sorted(data.demos))}): "
                  + "; ".join(data.toy_notes) + ". These results show that the pipeline runs end to end; they are not "
                  "evidence about the model."]
    parts += ["", "## Provenance", ""] + [f"- **{k}**: {v}" for k, v in data.provenance.items()]
    parts += ["", markdown_table(data.models) if len(data.models) else "No model has judged results yet."]
    parts += ["", "## Headline: warm - original error, per model", "",
              f"Rows: {HEADLINE_ROWS}. Methods and the verdict rule: appendix {letters['Methods note']}."]
    for model, rows in data.per_model.groupby("scope", sort=True):
        tag = " (demonstration, toy scale)" if model in data.demos else ""
        parts += ["", f"### {model}{tag}", ""]
        if data.model_notes.get(model):
            parts += [data.model_notes[model], ""]
        parts.append(effect_table(rows, "dataset", analysis.alpha))
    if data.per_model.empty:
        parts += ["", "No model has original and warm observations yet."]
    pooled_models = sorted(set(data.per_model["scope"]))
    parts += ["", "## Published effects, all models pooled", "",
              f"Models pooled: {', '.join(pooled_models) or 'none'}"
              + (" (includes demonstration results)" if data.demos & set(pooled_models) else "") + ".", "",
              effect_table(data.pooled, "effect", analysis.alpha) if len(data.pooled) else "Nothing to pool yet."]
    parts += ["", "## Figures", ""]
    parts += [f"![{f.caption}]({f.name})\n\n*{f.caption}*\n" for f in data.figures] or [
        "No figure yet (no results).", ""]
    parts += ["## Unpublished choices in force", "",
              "Choices the paper does not publish (marked [?] in the configuration's schema or the annotated "
              "configuration, and the versioned prompts in code), with the value this report was produced with.", "",
              markdown_table(data.choices) if len(data.choices) else "none"]
    for title, body in appendices.items():
        parts += ["", f"## Appendix {letters[title]}: {title}", "", body]
    return "\n".join(parts) + "\n"


def embed_figures(markdown: str, figures: list[Figure]) -> str:
    """The Markdown with each `](name.png)` image reference replaced by its base64 data URI."""
    from warmth_assets.lib.report_figures import data_uri

    for figure in figures:
        markdown = markdown.replace(f"]({figure.name})", f"]({data_uri(figure.png)})")
    return markdown


HTML_STYLE = """body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.4}
table{border-collapse:collapse;font-size:0.85em;margin:0.5em 0}th,td{border:1px solid #ccc;padding:2px 6px}
th{background:#f3f3f3}img{max-width:100%}blockquote{border-left:4px solid #d62728;margin:0;padding:0 1em}
code{background:#f6f6f6}"""


def to_html(markdown: str, figures: list[Figure], title: str = "Warmth replication report") -> str:
    """One self-contained HTML page: figures inline as base64 PNG, no external resource."""
    import html

    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark", {"html": False}).enable("table").render(embed_figures(markdown, figures))
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{HTML_STYLE}</style></head><body>\n{body}</body></html>\n")
