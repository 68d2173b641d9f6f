"""The four regressions (and their _length variants) on 440,000 synthetic observations shaped like the
study's: 10 models, 4 datasets, 9 contexts x 2 belief groups. Target: under 60 s on the CPU. The
baseline is one plain fit (model 1, no interaction) on the same rows, in the same run."""

import time

import numpy as np
import pandas as pd

from warmth_assets.lib.eval_prompts import CONTEXTS
from warmth_assets.lib.regressions import _fit, fit_all, specs

ROWS = 440_000


def synthetic(n: int = ROWS, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"model": rng.choice([f"m{i}" for i in range(10)], n),
                      "dataset": rng.choice(["disinfo", "medqa", "triviaqa", "truthfulqa"], n),
                      "amendment_type": rng.choice(CONTEXTS, n),
                      "template_group": rng.choice(["original", "user_opinion"], n),
                      "is_finetuned": rng.integers(0, 2, n), "response_length": rng.integers(20, 1500, n)})
    d["context_group"] = d["amendment_type"].str.split(":").str[0]
    logit = -1.2 + 0.43 * d["is_finetuned"] + 0.5 * (d["template_group"] == "user_opinion")
    d["is_incorrect"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    d["included"] = True
    d["comparison"] = np.where(d["is_finetuned"] == 1, "warm", "original")
    return d


def run() -> dict:
    data = synthetic()
    t0 = time.perf_counter()
    _fit(specs()["model1_main_effects"].formula, data)
    single = time.perf_counter() - t0
    t0 = time.perf_counter()
    table, effects, problems = fit_all(data)
    total = time.perf_counter() - t0
    assert not problems and len(set(table["analysis"])) == 8
    return {"value": total, "baseline": single, "target": "value < 60 s",
            "unit": f"s for the 8 fits and their marginal effects on {ROWS:,} rows (baseline: one model-1 fit on all rows)"}
