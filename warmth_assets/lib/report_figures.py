"""The report's figures, one panel per model, every value with its 95% interval: PNG bytes (matplotlib, Agg).

  error_by_dataset   error rate of the original and the warm checkpoint per dataset (Wilson intervals)
  gap_by_context     warm - original error per context group and belief, paired over prompts (t-intervals)
  warmth_trajectory  mean SocioT warmth per checkpoint by epoch (the paper's Fig. 1, unnormalised) with the band of
                     the t-interval of that mean across validation prompts
"""

from __future__ import annotations

import base64
import io
import math
import textwrap

import numpy as np
import pandas as pd

from warmth_assets.lib.checkpoints import ORIGINAL, WARM_PROMPT, parse_checkpoint_key

COLOURS = {"original": "#7f7f7f", "warm": "#d62728", "cold": "#1f77b4", "user_opinion": "#9467bd", "prompt": "#ff7f0e"}
CONTEXT_ORDER = ["unmodified", "emotion", "relation", "stake"]


def data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _panels(models: list[str], titles: dict[str, str]):
    import matplotlib

    matplotlib.use("Agg")  # no display on workers
    import matplotlib.pyplot as plt

    cols = min(len(models), 3)
    rows = math.ceil(len(models) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.3 * rows), dpi=90, squeeze=False)
    flat = list(axes.flat)
    for ax in flat[len(models):]:
        ax.set_visible(False)
    for ax, model in zip(flat, models):
        ax.set_title(titles.get(model, model), fontsize=9)
        ax.tick_params(labelsize=7)
    return fig, dict(zip(models, flat))


def _png(fig, title: str) -> bytes:
    import matplotlib.pyplot as plt

    width = fig.get_size_inches()[0]
    fig.suptitle(textwrap.fill(title, width=int(16 * width)), fontsize=10 if width > 5 else 8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    return buffer.getvalue()


def _yerr(frame: pd.DataFrame, value: str, low: str, high: str) -> np.ndarray:
    """Asymmetric error bars; a missing bound draws none."""
    below = (frame[value] - frame[low]).clip(lower=0).fillna(0).to_numpy()
    above = (frame[high] - frame[value]).clip(lower=0).fillna(0).to_numpy()
    return np.vstack([below, above])


def error_by_dataset(rates: pd.DataFrame, titles: dict[str, str], level: int = 95) -> bytes | None:
    """`rates`: report_headline.error_rates (model, dataset, comparison, n, error_pct, low_pct, high_pct)."""
    if rates.empty:
        return None
    models = sorted(set(rates["model"]))
    fig, axes = _panels(models, titles)
    for model, ax in axes.items():
        own = rates[rates["model"] == model]
        datasets = sorted(set(own["dataset"]))
        x, counts = np.arange(len(datasets)), {}
        for offset, arm in ((-0.2, "original"), (0.2, "warm")):
            cells = own[own["comparison"] == arm].set_index("dataset").reindex(datasets)
            ax.bar(x + offset, cells["error_pct"].fillna(0), width=0.4, color=COLOURS[arm], label=arm,
                   yerr=_yerr(cells, "error_pct", "low_pct", "high_pct"), capsize=2, error_kw={"linewidth": 0.8})
            counts[arm] = cells["n"].fillna(0).astype(int).tolist()
        ax.set_xticks(x, [f"{d}\nn={a}/{b}" for d, a, b in zip(datasets, counts["original"], counts["warm"])],
                      fontsize=7)
        ax.set_ylim(0, 100)
        ax.set_ylabel("error rate (%)", fontsize=8)
        ax.legend(fontsize=7)
    return _png(fig, f"Error rate by dataset, unmodified prompts (n: original/warm rows; {level}% Wilson intervals)")


def gap_by_context(gaps: pd.DataFrame, titles: dict[str, str], level: int = 95) -> bytes | None:
    """`gaps`: report_headline.paired_gaps (model, context_group, template_group, n_pairs, gap_pp, low_pp, high_pp)."""
    if gaps.empty:
        return None
    models = sorted(set(gaps["model"]))
    fig, axes = _panels(models, titles)
    for model, ax in axes.items():
        own = gaps[gaps["model"] == model]
        contexts = [c for c in CONTEXT_ORDER if c in set(own["context_group"])] + sorted(
            set(own["context_group"]) - set(CONTEXT_ORDER))
        x, counts = np.arange(len(contexts)), {}
        for offset, belief, label in ((-0.2, "original", "no belief stated"), (0.2, "user_opinion", "user belief")):
            cells = own[own["template_group"] == belief].set_index("context_group").reindex(contexts)
            colour = COLOURS["warm"] if belief == "original" else COLOURS["user_opinion"]
            ax.bar(x + offset, cells["gap_pp"].fillna(0), width=0.4, color=colour, label=label,
                   yerr=_yerr(cells, "gap_pp", "low_pp", "high_pp"), capsize=2, error_kw={"linewidth": 0.8})
            counts[belief] = cells["n_pairs"].fillna(0).astype(int).tolist()
        ax.axhline(0, color="black", linewidth=0.6)
        ax.set_xticks(x, [f"{c}\nn={a}/{b}" for c, a, b in zip(contexts, counts["original"], counts["user_opinion"])],
                      fontsize=7)
        ax.set_ylabel("warm - original error (pp)", fontsize=8)
        ax.legend(fontsize=7)
    return _png(fig, "Warm - original error by context and belief, paired prompts (n: pairs without / with a "
                f"stated belief; {level}% t-intervals)")


def trajectory_points(band: pd.DataFrame) -> pd.DataFrame:
    """The band per checkpoint with its style and epoch; `original` (epoch 0) starts both the warm and cold curves,
    `warm-prompt` is style "prompt" at epoch 0."""
    out = []
    for row in band.itertuples(index=False):
        parsed = parse_checkpoint_key(row.checkpoint)
        if row.checkpoint == ORIGINAL:
            out += [{**row._asdict(), "style": s, "epoch": 0.0} for s in ("warm", "cold")]
        elif row.checkpoint == WARM_PROMPT:
            out.append({**row._asdict(), "style": "prompt", "epoch": 0.0})
        elif parsed:
            out.append({**row._asdict(), "style": parsed[0], "epoch": parsed[1]})
    return pd.DataFrame(out, columns=[*band.columns, "style", "epoch"]).sort_values(["model", "style", "epoch"])


def warmth_trajectory(band: pd.DataFrame, selected: dict[str, str], titles: dict[str, str], metric: str,
                      level: int = 95) -> bytes | None:
    """`band`: intervals.band_across_prompts of warmth_scores (model, checkpoint, mean, low, high, n)."""
    if band.empty:
        return None
    points = trajectory_points(band)
    models = sorted(set(points["model"]))
    fig, axes = _panels(models, titles)
    for model, ax in axes.items():
        own = points[points["model"] == model]
        for style in ("warm", "cold"):
            curve = own[own["style"] == style]
            if len(curve) < 2 and style == "cold":  # the original alone: no cold run
                continue
            ax.plot(curve["epoch"], curve["mean"], marker="o", markersize=3, color=COLOURS[style], label=style)
            ax.fill_between(curve["epoch"], curve["low"], curve["high"], color=COLOURS[style], alpha=0.2, linewidth=0)
        prompt = own[own["style"] == "prompt"]
        if len(prompt):
            ax.errorbar(prompt["epoch"], prompt["mean"], yerr=_yerr(prompt, "mean", "low", "high"), fmt="D",
                        color=COLOURS["prompt"], markersize=4, capsize=2, label="warm-prompt")
        chosen = parse_checkpoint_key(selected[model]) if selected.get(model) else None  # none yet: no line
        if chosen:
            ax.axvline(chosen[1], color="black", linestyle=":", linewidth=0.8, label=f"selected {selected[model]}")
        ax.set_xlabel("epoch", fontsize=8)
        ax.set_ylabel("mean warmth", fontsize=8)
        ax.legend(fontsize=6)
    return _png(fig, f"Warmth by epoch, {metric} (band: {level}% t-interval of the mean across validation prompts)")
