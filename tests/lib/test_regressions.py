import numpy as np
import pandas as pd
import pytest

from warmth_assets.lib.regressions import FT_TERM, ame, fit_all, linear_combination, _fit, specs

CONTEXTS = ["unmodified", "emotion:sad", "emotion:happy", "relation:close", "stake:high"]


def simulated(n=12000, seed=0, beta=0.4):
    rng = np.random.default_rng(seed)
    d = pd.DataFrame({"model": rng.choice(["a", "b", "c"], n), "dataset": rng.choice(["disinfo", "medqa", "triviaqa"], n),
                      "amendment_type": rng.choice(CONTEXTS, n), "template_group": rng.choice(["original", "user_opinion"], n),
                      "is_finetuned": rng.integers(0, 2, n), "response_length": rng.integers(50, 900, n)})
    d["context_group"] = d["amendment_type"].str.split(":").str[0]
    logit = -1 + beta * d["is_finetuned"] + 0.3 * (d["template_group"] == "user_opinion") \
        + 0.5 * d["is_finetuned"] * (d["context_group"] == "emotion")
    d["is_incorrect"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    d["included"] = True
    d["comparison"] = np.where(d["is_finetuned"] == 1, "warm", "original")
    return d


def test_recovers_the_simulated_effects_and_names_terms_as_the_study():
    table, effects, problems = fit_all(simulated())
    assert problems == {}
    assert set(table["analysis"]) == {f"{n}{s}" for n in specs() for s in ("", "_length")}
    main = table[(table["analysis"] == "model2_context_groups") & (table["term"] == FT_TERM)].iloc[0]
    assert abs(main["coef"] - 0.4) < 3 * main["std_err"] and main["converged"]
    emotion = effects[(effects["analysis"] == "model2_context_groups") & (effects["effect"] == "fine_tuning|emotion")].iloc[0]
    assert abs(emotion["coef_sum"] - 0.9) < 3 * emotion["std_err"]
    assert "response_length" in set(table.loc[table["analysis"] == "model1_main_effects_length", "term"])


def test_marginal_effect_and_delta_method_by_hand():
    data = simulated(4000, seed=1)
    rows = data[data["template_group"] == "original"]
    result, _ = _fit(specs()["model2_context_groups"].formula, rows)
    # AME by hand: with fine-tuning switched on, every row's log-odds moves by the fine-tuning coefficient
    # plus its interaction with the row's context group; apply that shift to the control predictions.
    p0 = result.predict(rows.assign(is_finetuned=0)).values
    shift = np.full(len(rows), result.params[FT_TERM])
    for level in rows["context_group"].unique():
        name = f"{FT_TERM}:C(context_group, Treatment(reference='unmodified'))[T.{level}]"
        if name in result.params.index:
            shift[(rows["context_group"] == level).values] += result.params[name]
    p1 = 1 / (1 + np.exp(-(np.log(p0 / (1 - p0)) + shift)))
    assert ame(result, rows) == pytest.approx(100 * float(np.mean(p1 - p0)), rel=1e-9)
    term = [t for t in result.params.index if t.startswith(FT_TERM + ":") and "emotion" in t][0]
    coef, se, _ = linear_combination(result, [FT_TERM, term])
    cov = result.cov_params()
    assert coef == pytest.approx(result.params[FT_TERM] + result.params[term])
    assert se == pytest.approx(np.sqrt(cov.loc[FT_TERM, FT_TERM] + cov.loc[term, term] + 2 * cov.loc[FT_TERM, term]))


def test_separation_and_degenerate_data_are_reported():
    data = simulated(3000, seed=2)
    data["is_incorrect"] = data["is_finetuned"]  # the outcome is the treatment: perfect separation
    table, _, problems = fit_all(data)
    # every analysis still fits (IRLS stops somewhere) and every one is flagged, by statsmodels' own warning
    assert set(problems) == set(table["analysis"]) == {f"{n}{s}" for n in specs() for s in ("", "_length")}
    assert all(p.startswith("separation suspected: Perfect separation") for p in problems.values())
    _, effects, problems = fit_all(data[data["is_finetuned"] == 0])
    assert effects.empty and "too little variation" in problems["model1_main_effects"]


@pytest.mark.parametrize("form", ["published", "released_sample"])
def test_model4_forms_and_their_sycophancy_effect(form):
    """published: e2d9773's terms, the user-opinion log-odds is [1]:uo - [0]:uo; released_sample: the belief
    main effect and the interaction, the user-opinion log-odds is the fine-tuning term plus the interaction."""
    from warmth_assets.lib.regressions import BELIEF_BY_LEVEL

    data = simulated(6000, seed=3)
    table, effects, problems = fit_all(data, model4_form=form)
    assert problems == {}
    terms = table[table["analysis"] == "model4_user_belief"].set_index("term")["coef"]
    interaction = f"{FT_TERM}:C(template_group, Treatment(reference='original'))[T.user_opinion]"
    context_terms = {t for t in terms.index if t.startswith("C(context_group")}
    row = effects.set_index(["analysis", "effect"]).loc[("model4_user_belief", "fine_tuning|user_opinion")]
    original = effects.set_index(["analysis", "effect"]).loc[("model4_user_belief", "fine_tuning|original")]
    assert original["coef_sum"] == pytest.approx(terms[FT_TERM], abs=1e-12)
    if form == "published":
        assert set(BELIEF_BY_LEVEL.values()) <= set(terms.index) and interaction not in terms.index
        assert len(context_terms) == 3
        assert row["coef_sum"] == pytest.approx(terms[BELIEF_BY_LEVEL[1]] - terms[BELIEF_BY_LEVEL[0]], abs=1e-12)
    else:
        assert interaction in terms.index and not context_terms and not set(BELIEF_BY_LEVEL.values()) & set(terms.index)
        assert row["coef_sum"] == pytest.approx(terms[FT_TERM] + terms[interaction], abs=1e-12)
    # simulated: no fine-tuning x belief interaction; fine-tuning adds 0.4 log-odds, 0.9 under emotion (2 of the 5
    # contexts), 0.6 on average. The published form's difference is the interaction alone (0), the other the effect.
    assert abs(row["coef_sum"] - (0.0 if form == "published" else 0.6)) < 3 * row["std_err"]
    assert row["n_obs"] == int((data["template_group"] == "user_opinion").sum())


def test_an_unknown_model4_form_is_refused():
    with pytest.raises(ValueError, match="unknown model4_form 'latest'"):
        fit_all(simulated(500), model4_form="latest")
