"""Fidelity of the product's regressions to the study's own analysis code, on its released sample outputs
(docs/study.md §8.5).

Reference numbers (numbers only; the study's code is not in this repository) come from the authors' repository
lujainibrahim/warm_ai_2025, `statistical_models/`, at three stored commits:

  e2d97733eef6c03d05fe34352a22c20f5526367e  the latest: model1..4 scripts, analysis_utilities.py (deduplication,
                                            counterfactual per-condition effects, the longer refusal list),
                                            model_configs_sample.py; its model_outputs/*.txt are full-data runs
                                            (N = 32,145 / 439,792, five models), not comparable with the sample.
                                            This is the code behind the published numbers (+10.99 pp).
  aa569dc24232da0ab5e568d94882ee1f4f807ff1  an earlier analysis_utilities.py and model2..4 scripts
  e9bc85212636e8d3c0c399400d4f82a9f1b4a7af  the earliest (output dated 1 Sep 2025): analysis_utilities.py, model1..4 and
                                            model_4_sycophancy_analysis.txt, the only committed output that
                                            was run on the sample (316 rows, two models)

How they were produced: the files were copied to a scratch folder outside the repository (/tmp/study_code/<commit>/
statistical_models/, with ../sample_data linked to ../shared/data/warm_ai_paper/sample_outputs, the same 16 CSVs
as the study's sample_data/) and each script was run unchanged with this project's venv (statsmodels 0.15.0,
patsy 1.0.3, pandas 2.3.3, numpy 2.4.6), through a wrapper that only records every GLM fit:
    cd /tmp/study_code/<commit>/statistical_models && python model1_main_effects.py   (likewise model2..model4)
Models 1-3 below are e2d9773's printout; model 4 is printed twice: e2d9773's (LATEST_MODEL4, the published form)
and e9bc852's (in STUDY; aa569dc prints the same fit, and it equals e9bc852's committed
model_4_sycophancy_analysis.txt line for line).
The `_length` rows of models 2-4 are the same scripts with their own switch `INCLUDE_LENGTH = True`
(model 1 at e2d9773 runs both variants itself). The numbers below are copied from the printed summaries:
coefficients to 4 decimals, standard errors as statsmodels prints them (3 decimals, or 3 significant digits in
e-notation), log-likelihoods as printed, per-condition effects to the printed decimals.

Term names differ only by column: the study's `amendment_type` (group before ':') is our `context_group`, its
`amendment_type_detailed` our `amendment_type`, its `prompt_type` our `template_group`, its dataset `trivia` our
`triviaqa`; at e9bc852 fine-tuning enters as the number `is_finetuned` (same fit, term `...[T.1]` here).

Both forms are the product's own fits (`fit_all`, observations from `analysis.observations`), not refits here:
  * defaults ([analysis] model4_form = "published", refusal_list = "published"): models 1-3 and model 4 against
    e2d9773 — observation counts, every coefficient, SE and log-likelihood, and every per-condition effect it
    prints (AME, log-odds combination, SE, p), the sycophancy effect included (the AME over user-opinion rows,
    tested as [1]:user_opinion - [0]:user_opinion as the study's code does). The published list catches the
    curly apostrophe in "I can’t help with that." (a llama_70b original MedQA user-opinion row whose released
    `refusal` flag is 0): 315 rows, as e2d9773.
  * model4_form = "released_sample", refusal_list = "earlier": model 4 against e9bc852/aa569dc (316 rows).

Where we differ, and why:
  * Log-odds printed as percentage points (e9bc852, aa569dc): "Marginal Effect: -0.8648 (-86.48 pp)" for model 2's
    unmodified context, "original: 0.0326 (3.26 pp)" for model 4, are coefficient sums times 100. We keep the
    log-odds sum in `coef_sum` and report the average marginal effect (counterfactual predictions) in
    `estimate_pp`, as e2d9773 does.
  * Sycophancy effect of the released_sample form: e9bc852 looks up `is_finetuned:...[user_opinion]` (patsy
    names it `[T.user_opinion]`) and aa569dc looks up `[0]:`/`[1]:` terms its own formula does not create, so both
    silently drop the effect. We report the fine-tuning main term plus the interaction, with the covariance in
    its SE.
  * Separation: on 25-124 rows, models 1-3 are (quasi-)separated (|log-odds| ~ 20, SE ~ 1e4). The study prints them
    silently; we print the same numbers and report the analyses in `problems`. Those numbers are where IRLS
    stopped, not estimates; ours and the study's agree to about 1e-7 relative (row order differs), so for them
    the comparison allows a 1e-6 relative slack on top of the printed precision (it matters only for three
    SEs near 3e4 printed to 4 decimals).
"""

import math
from pathlib import Path

import pandas as pd
import pytest

from warmth_assets.lib import analysis
from warmth_assets.lib.config import AnalysisSettings
from warmth_assets.lib.outputs_import import read_release
from warmth_assets.lib.regressions import BELIEF_BY_LEVEL, FT_TERM, MODEL4_FORMULAS, _fit, fit_all, specs

SAMPLES = Path(__file__).resolve().parents[3] / "shared" / "data" / "warm_ai_paper" / "sample_outputs"
pytestmark = pytest.mark.needs_shared("data/warm_ai_paper/sample_outputs")

WARM = "warm-e2"  # the checkpoint key the warm outputs are imported as (as in tests/assets/test_analysis.py)

# analysis: (observations, log-likelihood, {term: (coef, std err)}), as printed by the study's code (see above)
STUDY = {
    'model1_main_effects': (25, '-8.9416', {
        'Intercept': ('-21.1104', '1.16e+04'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('-1.2164', '1.286'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('22.8568', '1.16e+04'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('20.5857', '1.16e+04'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('19.5819', '1.16e+04'),
        'C(model)[T.qwen_32b]': ('0.1082', '1.182'),
    }),
    'model1_main_effects_length': (25, '-3.5437', {
        'Intercept': ('-36.0237', '1.45e+04'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('-1.9372', '3.310'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('28.1331', '1.45e+04'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('31.4886', '1.45e+04'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('20.9176', '1.45e+04'),
        'C(model)[T.qwen_32b]': ('-2.0275', '2.613'),
        'response_length': ('0.0106', '0.005'),
    }),
    'model2_context_groups': (124, '-49.142', {
        'Intercept': ('-1.6670', '0.877'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('-0.8648', '1.010'),
        "C(context_group, Treatment(reference='unmodified'))[T.emotion]": ('-22.2020', '2.17e+04'),
        "C(context_group, Treatment(reference='unmodified'))[T.relation]": ('-0.2251', '0.749'),
        "C(context_group, Treatment(reference='unmodified'))[T.stake]": ('-22.9831', '3.68e+04'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('1.8586', '0.773'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('0.8136', '0.787'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('1.0712', '0.777'),
        'C(model)[T.qwen_32b]': ('-0.1531', '0.493'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(context_group, Treatment(reference='unmodified'))[T.emotion]": ('0.8926', '3.01e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(context_group, Treatment(reference='unmodified'))[T.relation]": ('1.2366', '1.160'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(context_group, Treatment(reference='unmodified'))[T.stake]": ('1.0342', '4.93e+04'),
    }),
    'model2_context_groups_length': (124, '-49.129', {
        'Intercept': ('-1.8084', '1.256'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('-0.8163', '1.054'),
        "C(context_group, Treatment(reference='unmodified'))[T.emotion]": ('-22.2114', '2.17e+04'),
        "C(context_group, Treatment(reference='unmodified'))[T.relation]": ('-0.2074', '0.757'),
        "C(context_group, Treatment(reference='unmodified'))[T.stake]": ('-22.9863', '3.68e+04'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('1.8276', '0.797'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('0.8875', '0.918'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('1.0738', '0.777'),
        'C(model)[T.qwen_32b]': ('-0.1563', '0.494'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(context_group, Treatment(reference='unmodified'))[T.emotion]": ('0.8683', '3.01e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(context_group, Treatment(reference='unmodified'))[T.relation]": ('1.2141', '1.168'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(context_group, Treatment(reference='unmodified'))[T.stake]": ('1.0405', '4.93e+04'),
        'response_length': ('0.0001', '0.001'),
    }),
    'model3_context_detailed': (124, '-43.677', {
        'Intercept': ('-1.8195', '0.912'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('-0.9109', '1.032'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.emotion:anger]": ('-21.6942', '3.97e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.emotion:happy]": ('-21.6037', '4.58e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.emotion:sad]": ('-22.4532', '3.19e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.relation:close]": ('0.7492', '0.869'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.relation:hierarchical_down]": ('-0.5548', '0.985'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.relation:hierarchical_up]": ('-23.0977', '2.82e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.stake:high]": ('-23.4863', '4.21e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.stake:low]": ('-21.5277', '7.95e+04'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('2.3702', '0.836'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('0.9269', '0.816'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('1.2106', '0.812'),
        'C(model)[T.qwen_32b]': ('-0.2188', '0.529'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.emotion:anger]": ('0.9646', '5.12e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.emotion:happy]": ('0.8741', '7.24e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.emotion:sad]": ('0.9109', '4.51e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.relation:close]": ('0.8394', '1.322'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.relation:hierarchical_down]": ('1.5354', '1.443'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.relation:hierarchical_up]": ('22.6902', '2.82e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.stake:high]": ('1.2187', '5.5e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.stake:low]": ('0.9109', '1.12e+05'),
    }),
    'model3_context_detailed_length': (124, '-43.486', {
        'Intercept': ('-2.4651', '1.402'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('-0.6987', '1.085'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.emotion:anger]": ('-21.7363', '3.96e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.emotion:happy]": ('-21.6810', '4.55e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.emotion:sad]": ('-22.4821', '3.19e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.relation:close]": ('0.8389', '0.884'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.relation:hierarchical_down]": ('-0.4169', '1.013'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.relation:hierarchical_up]": ('-23.1117', '2.83e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.stake:high]": ('-23.5039', '4.25e+04'),
        "C(amendment_type, Treatment(reference='unmodified'))[T.stake:low]": ('-21.3891', '7.95e+04'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('2.2347', '0.860'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('1.2542', '0.979'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('1.2598', '0.821'),
        'C(model)[T.qwen_32b]': ('-0.2289', '0.531'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.emotion:anger]": ('0.9219', '5.11e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.emotion:happy]": ('0.9034', '7.21e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.emotion:sad]": ('0.7436', '4.5e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.relation:close]": ('0.7468', '1.330'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.relation:hierarchical_down]": ('1.4037', '1.460'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.relation:hierarchical_up]": ('22.6505', '2.83e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.stake:high]": ('1.2452', '5.55e+04'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(amendment_type, Treatment(reference='unmodified'))[T.stake:low]": ('0.9720', '1.12e+05'),
        'response_length': ('0.0005', '0.001'),
    }),
    'model4_user_belief': (316, '-166.59', {
        'Intercept': ('-2.3561', '0.494'),
        "C(template_group, Treatment(reference='original'))[T.user_opinion]": ('0.0262', '0.406'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('1.8867', '0.465'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('1.1373', '0.480'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('1.4365', '0.472'),
        'C(model)[T.qwen_32b]': ('-0.1529', '0.269'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('0.0326', '0.458'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(template_group, Treatment(reference='original'))[T.user_opinion]": ('0.2623', '0.566'),
    }),
    'model4_user_belief_length': (316, '-166.52', {
        'Intercept': ('-2.1793', '0.681'),
        "C(template_group, Treatment(reference='original'))[T.user_opinion]": ('0.0279', '0.406'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('1.9044', '0.467'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('1.0463', '0.537'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('1.4209', '0.474'),
        'C(model)[T.qwen_32b]': ('-0.1424', '0.270'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('-0.0072', '0.470'),
        "C(is_finetuned, Treatment(reference=0))[T.1]:C(template_group, Treatment(reference='original'))[T.user_opinion]": ('0.2652', '0.566'),
        'response_length': ('-0.0002', '0.000'),
    }),
}

# Per-condition effects printed by e2d9773's models 2 and 3: (average marginal effect in pp, log-odds sum, its
# delta-method SE, p). Model 1's fine-tuning AME: -0.1376 (-13.76 pp), with length -0.0824 (-8.24 pp).
STUDY_EFFECTS = {
    'model2_context_groups': {
        'emotion': ('0.00', '0.0278', '30106.4738', '1.0000'),
        'relation': ('7.35', '0.3718', '0.5692', '0.5136'),
        'stake': ('0.00', '0.1695', '49312.2426', '1.0000'),
        'unmodified': ('-14.40', '-0.8648', '1.0097', '0.3918'),
    },
    'model2_context_groups_length': {
        'emotion': ('0.00', '0.0519', '30098.9328', '1.0000'),
        'relation': ('7.85', '0.3978', '0.5933', '0.5025'),
        'stake': ('0.00', '0.2242', '49338.7705', '1.0000'),
        'unmodified': ('-13.61', '-0.8163', '1.0545', '0.4388'),
    },
    'model3_context_detailed': {
        'emotion:anger': ('0.00', '0.0538', '51235.6265', '1.0000'),
        'emotion:happy': ('-0.00', '-0.0367', '72446.6667', '1.0000'),
        'emotion:sad': ('-0.00', '-0.0000', '45060.6478', '1.0000'),
        'relation:close': ('-1.56', '-0.0715', '0.8260', '0.9310'),
        'relation:hierarchical_down': ('10.96', '0.6245', '1.0062', '0.5348'),
        'relation:hierarchical_up': ('15.64', '21.7793', '28179.2378', '0.9994'),
        'stake:high': ('0.00', '0.3078', '54999.9202', '1.0000'),
        'stake:low': ('0.00', '0.0000', '112376.2452', '1.0000'),
        'unmodified': ('-14.54', '-0.9109', '1.0316', '0.3773'),
    },
    'model3_context_detailed_length': {
        'emotion:anger': ('0.00', '0.2232', '51076.5338', '1.0000'),
        'emotion:happy': ('0.00', '0.2048', '72057.5395', '1.0000'),
        'emotion:sad': ('0.00', '0.0449', '45009.9602', '1.0000'),
        'relation:close': ('1.04', '0.0481', '0.8496', '0.9548'),
        'relation:hierarchical_down': ('12.19', '0.7051', '1.0240', '0.4911'),
        'relation:hierarchical_up': ('16.83', '21.9518', '28263.5199', '0.9994'),
        'stake:high': ('0.00', '0.5465', '55499.9118', '1.0000'),
        'stake:low': ('0.00', '0.2734', '112376.2452', '1.0000'),
        'unmodified': ('-11.20', '-0.6987', '1.0850', '0.5196'),
    },
}
STUDY_MODEL1_AME_PP = {"model1_main_effects": "-13.76", "model1_main_effects_length": "-8.24"}

# e9bc852/aa569dc model 4, "Marginal Effect" for original prompts: the fine-tuning log-odds coefficient, printed
# "(3.26 pp)"; SE, p. Their user-opinion effect is never printed (see the module docstring).
STUDY_MODEL4_ORIGINAL = {"model4_user_belief": ("0.0326", "0.4583", "0.9433"),
                         "model4_user_belief_length": ("-0.0072", "0.4702", "0.9878")}

# e2d9773's model4_sycophancy.py `base_parts`, as its source reads (its column names; joined by build_formula)
E2D9773_MODEL4_PARTS = [
    "is_incorrect ~ C(is_finetuned, Treatment(reference=0))",
    "C(amendment_type, Treatment(reference='unmodified'))",
    "C(dataset, Treatment(reference='disinfo'))",
    "C(is_finetuned, Treatment(reference=0)):C(prompt_type, Treatment(reference='original'))",
    "C(model)",
]
# e2d9773's model 4 printout on the sample (315 rows: its refusal list drops the curly-apostrophe row)
LATEST_MODEL4 = {
    '': (315, '-162.02', {
        'Intercept': ('-2.7644', '0.605'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('0.0387', '0.464'),
        "C(context_group, Treatment(reference='unmodified'))[T.emotion]": ('-0.0676', '0.503'),
        "C(context_group, Treatment(reference='unmodified'))[T.relation]": ('0.7652', '0.394'),
        "C(context_group, Treatment(reference='unmodified'))[T.stake]": ('0.2631', '0.564'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('1.6710', '0.472'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('1.0886', '0.488'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('1.4104', '0.481'),
        'C(model)[T.qwen_32b]': ('-0.1163', '0.273'),
        "C(is_finetuned, Treatment(reference=0))[0]:C(template_group, Treatment(reference='original'))[T.user_opinion]": ('0.0455', '0.414'),
        "C(is_finetuned, Treatment(reference=0))[1]:C(template_group, Treatment(reference='original'))[T.user_opinion]": ('0.3568', '0.405'),
    }),
    '_length': (315, '-162.00', {
        'Intercept': ('-2.8653', '0.784'),
        'C(is_finetuned, Treatment(reference=0))[T.1]': ('0.0613', '0.477'),
        "C(context_group, Treatment(reference='unmodified'))[T.emotion]": ('-0.0754', '0.504'),
        "C(context_group, Treatment(reference='unmodified'))[T.relation]": ('0.7671', '0.395'),
        "C(context_group, Treatment(reference='unmodified'))[T.stake]": ('0.2628', '0.564'),
        "C(dataset, Treatment(reference='disinfo'))[T.medqa]": ('1.6589', '0.475'),
        "C(dataset, Treatment(reference='disinfo'))[T.triviaqa]": ('1.1402', '0.551'),
        "C(dataset, Treatment(reference='disinfo'))[T.truthfulqa]": ('1.4193', '0.483'),
        'C(model)[T.qwen_32b]': ('-0.1213', '0.274'),
        "C(is_finetuned, Treatment(reference=0))[0]:C(template_group, Treatment(reference='original'))[T.user_opinion]": ('0.0419', '0.415'),
        "C(is_finetuned, Treatment(reference=0))[1]:C(template_group, Treatment(reference='original'))[T.user_opinion]": ('0.3545', '0.405'),
        'response_length': ('9.121e-05', '0.000'),
    }),
}
LATEST_MODEL4_EFFECTS = {  # (AME pp, "coefficient", SE, p) as e2d9773 prints them
    '': {
        'original': ('0.58', '0.0387', '0.4636', '0.9335'),
        'user_opinion': ('6.45', '0.3114', '0.5742', '0.5876'),
    },
    '_length': {
        'original': ('0.92', '0.0613', '0.4770', '0.8978'),
        'user_opinion': ('6.89', '0.3127', '0.5743', '0.5862'),
    },
}
CURLY_REFUSAL = ("llama_70b/original/medqa_original_outputs.csv", 14)


def printed_tolerance(text: str) -> float:
    """Half a unit in the last printed digit: '-0.8648' -> 5e-5, '1.16e+04' -> 50, '-166.59' -> 5e-3."""
    mantissa, _, exponent = text.lower().partition("e")
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    return 0.5 * 10.0 ** (int(exponent or 0) - decimals)


def agrees(value: float, text: str, separated: bool = False) -> bool:
    slack = 1e-6 * abs(float(text)) if separated else 0.0
    return abs(value - float(text)) <= printed_tolerance(text) * (1 + 1e-9) + slack


def sample_judged() -> pd.DataFrame:
    """What `warmth import-outputs` stores as judgments (test_the_import_path_gives_the_same_fits checks the
    observations made from them against a real import)."""
    return pd.concat([f.rows.assign(model=f.model, checkpoint="original" if f.stage == "original" else WARM)
                      for f in read_release(SAMPLES)], ignore_index=True)


def product_fits(settings: AnalysisSettings):
    """(observations, regression table, effects, problems) as the analysis assets make them with `settings`."""
    obs = analysis.observations(sample_judged(), {}, 2.0, settings.refusal_list)
    table, effects, problems = fit_all(obs, model4_form=settings.model4_form, alpha=settings.alpha)
    return obs, table, effects, problems


@pytest.fixture(scope="module")
def published():
    """The product's defaults: the study's analysis as published (e2d9773)."""
    defaults = AnalysisSettings()
    assert (defaults.model4_form, defaults.refusal_list) == ("published", "published")
    return product_fits(defaults)


@pytest.fixture(scope="module")
def released():
    """The named variant of the earlier commits (e9bc852/aa569dc), whose model-4 output was run on the sample."""
    return product_fits(AnalysisSettings(model4_form="released_sample", refusal_list="earlier"))


def fit_rows(obs: pd.DataFrame) -> pd.DataFrame:
    rows = obs[obs["included"] & obs["comparison"].isin(["original", "warm"])].copy()
    rows["is_incorrect"] = rows["is_incorrect"].astype(int)
    return rows


def test_the_published_model4_formula_is_the_studys(published):
    """The product's formula is e2d9773's, word for word once its column names are ours."""
    study = " + ".join(E2D9773_MODEL4_PARTS)
    ours = study.replace("C(amendment_type,", "C(context_group,").replace("C(prompt_type,", "C(template_group,")
    assert MODEL4_FORMULAS["published"] == ours
    assert specs()["model4_user_belief"].formula == ours  # the default form


@pytest.mark.parametrize("refusal_list", ["published", "earlier"])
def test_observations_follow_the_studys_refusal_rule(published, released, refusal_list):
    obs = (published if refusal_list == "published" else released)[0]
    excluded = set(zip(obs.loc[~obs["included"], "source_file"], obs.loc[~obs["included"], "source_row"]))
    released_flags = {("llama_70b/original/medqa_original_outputs.csv", 6),
                      ("llama_70b/original/medqa_original_outputs.csv", 18),
                      ("qwen_32b/warm/truthfulqa_warm_outputs.csv", 4)}
    # the list is matched in the response text; the released flag stays beside it for comparison
    assert obs["refusal_flag"].sum() == 3
    curly = obs[(obs["source_file"] == CURLY_REFUSAL[0]) & (obs["source_row"] == CURLY_REFUSAL[1])].iloc[0]
    assert "I can’t" in curly["response"] and not curly["refusal_flag"] and curly["template_group"] == "user_opinion"
    disagree = set(zip(obs.loc[obs["refusal"] != obs["refusal_flag"], "source_file"],
                       obs.loc[obs["refusal"] != obs["refusal_flag"], "source_row"]))
    assert len(obs) == 319
    if refusal_list == "published":  # e2d9773's list also drops the curly-apostrophe row (model 4 only)
        assert int(obs["included"].sum()) == 315 and excluded == released_flags | {CURLY_REFUSAL}
        assert disagree == {CURLY_REFUSAL} and curly["refusal"] and curly["exclusion"] == "refusal (not disinfo)"
    else:  # the earlier list reproduces the released flags on every row
        assert int(obs["included"].sum()) == 316 and excluded == released_flags
        assert disagree == set() and not curly["refusal"] and curly["included"]


def study_fit_for(name, published, released):
    """Models 1-3 are e2d9773's printout (the defaults); STUDY's model 4 is e9bc852's (the released_sample form)."""
    return released if name.startswith("model4") else published


@pytest.mark.parametrize("name", sorted(STUDY))
def test_coefficients_standard_errors_and_log_likelihoods(published, released, name):
    table = study_fit_for(name, published, released)[1]
    n_obs, llf, terms = STUDY[name]
    ours = table[table["analysis"] == name].set_index("term")
    assert set(ours.index) == set(terms)
    assert (ours["n_obs"] == n_obs).all() and agrees(ours["log_likelihood"].iloc[0], llf)
    for term, (coef, se) in terms.items():
        separated = float(se) > 100
        assert agrees(ours.loc[term, "coef"], coef, separated), (term, ours.loc[term, "coef"], coef)
        assert agrees(ours.loc[term, "std_err"], se, separated), (term, ours.loc[term, "std_err"], se)


def test_models_1_to_3_do_not_depend_on_the_model4_form_or_the_refusal_list(published, released):
    """The one row the two lists disagree on is a user-opinion row, which models 1-3 do not use."""
    def models_1_to_3(table):
        return table[~table["analysis"].str.startswith("model4")].reset_index(drop=True)

    pd.testing.assert_frame_equal(models_1_to_3(published[1]), models_1_to_3(released[1]), rtol=1e-9)


@pytest.mark.parametrize("suffix", ["", "_length"])
def test_published_model4_is_the_studys_latest_code(published, suffix):
    """The product's default model 4 reproduces e2d9773's printout: its fit, and the effects it prints."""
    obs, table, effects, _ = published
    name = "model4_user_belief" + suffix
    n_obs, llf, terms = LATEST_MODEL4[suffix]
    ours = table[table["analysis"] == name].set_index("term")
    assert set(ours.index) == set(terms)
    assert (ours["n_obs"] == n_obs).all() and n_obs == 315 and agrees(ours["log_likelihood"].iloc[0], llf)
    for term, (coef, se) in terms.items():
        assert agrees(ours.loc[term, "coef"], coef), (term, ours.loc[term, "coef"], coef)
        assert agrees(ours.loc[term, "std_err"], se), (term, ours.loc[term, "std_err"], se)
    printed = LATEST_MODEL4_EFFECTS[suffix]
    rows = fit_rows(obs)
    for level, (pp, coef, se, p) in printed.items():
        row = effects.set_index(["analysis", "effect"]).loc[(name, f"fine_tuning|{level}")]
        assert row["n_obs"] == int((rows["template_group"] == level).sum()) == {"original": 124, "user_opinion": 191}[level]
        assert agrees(row["estimate_pp"], pp), (level, row["estimate_pp"], pp)
        assert agrees(row["coef_sum"], coef), (level, row["coef_sum"], coef)
        assert agrees(row["std_err"], se), (level, row["std_err"], se)
        assert agrees(row["p_value"], p), (level, row["p_value"], p)
    # its sycophancy log-odds is the difference of the two belief columns (the interaction alone) ...
    sycophancy = effects.set_index(["analysis", "effect"]).loc[(name, "fine_tuning|user_opinion")]
    difference = ours.loc[BELIEF_BY_LEVEL[1], "coef"] - ours.loc[BELIEF_BY_LEVEL[0], "coef"]
    assert sycophancy["coef_sum"] == pytest.approx(difference, abs=1e-12)
    # ... while its points are the AME over the user-opinion rows, which moves with the main term too
    assert abs(sycophancy["estimate_pp"] - 100 * difference) > 1


def test_log_odds_are_not_reported_as_points(published, released):
    """e9bc852/aa569dc print coefficient sums times 100 as 'pp'; we keep log-odds and points apart."""
    effects = published[2].set_index(["analysis", "effect"])
    unmodified = effects.loc[("model2_context_groups", "fine_tuning|unmodified")]
    assert agrees(unmodified["coef_sum"], "-0.8648")    # what they print as "-86.48 pp"
    assert agrees(unmodified["estimate_pp"], "-14.40")  # the AME their own counterfactual helper prints
    effects = released[2].set_index(["analysis", "effect"])
    for name, (coef, se, p) in STUDY_MODEL4_ORIGINAL.items():
        original = effects.loc[(name, "fine_tuning|original")]
        assert agrees(original["coef_sum"], coef) and agrees(original["std_err"], se) and agrees(original["p_value"], p)
        # our points are the AME over the 124 original-prompt rows, not 100 x the coefficient ("3.26 pp")
        assert original["n_obs"] == 124 and abs(original["estimate_pp"] - 100 * original["coef_sum"]) > 0.5
    assert agrees(effects.loc[("model4_user_belief", "fine_tuning|original"), "estimate_pp"], "0.50")  # ours


@pytest.mark.parametrize("name", sorted(STUDY_EFFECTS))
def test_per_condition_effects(published, name):
    effects = published[2].set_index(["analysis", "effect"])
    for level, (pp, coef, se, p) in STUDY_EFFECTS[name].items():
        row = effects.loc[(name, f"fine_tuning|{level}")]
        separated = float(se) > 100
        assert agrees(row["estimate_pp"], pp), (level, row["estimate_pp"], pp)
        assert agrees(row["coef_sum"], coef, separated), (level, row["coef_sum"], coef)
        assert agrees(row["std_err"], se, separated), (level, row["std_err"], se)
        assert agrees(row["p_value"], p), (level, row["p_value"], p)


def test_model1_average_marginal_effect(published):
    effects = published[2].set_index(["analysis", "effect"])
    for name, pp in STUDY_MODEL1_AME_PP.items():
        assert agrees(effects.loc[(name, "fine_tuning"), "estimate_pp"], pp)


@pytest.mark.parametrize("suffix", ["", "_length"])
def test_released_sample_sycophancy_effect_is_main_term_plus_interaction(released, suffix):
    """The effect the earlier study code drops (e9bc852, aa569dc), in the released_sample form."""
    obs, table, effects, _ = released
    name = "model4_user_belief" + suffix
    coefs = table[table["analysis"] == name].set_index("term")["coef"]
    interaction = f"{FT_TERM}:C(template_group, Treatment(reference='original'))[T.user_opinion]"
    row = effects.set_index(["analysis", "effect"]).loc[(name, "fine_tuning|user_opinion")]
    assert row["n_obs"] == 192
    assert row["coef_sum"] == pytest.approx(coefs[FT_TERM] + coefs[interaction], abs=1e-12)
    rows = fit_rows(obs)
    rows = rows[rows["template_group"].isin(["original", "user_opinion"])]
    result, _ = _fit(specs("released_sample")["model4_user_belief"].formula + (" + response_length" if suffix else ""),
                     rows)
    cov = result.cov_params()
    expected_se = math.sqrt(cov.loc[FT_TERM, FT_TERM] + cov.loc[interaction, interaction] + 2 * cov.loc[FT_TERM, interaction])
    assert row["std_err"] == pytest.approx(expected_se, rel=1e-9)
    # at the study's printed precision: 0.0326 + 0.2623 (0.0072 fewer with length), not the bare interaction
    assert agrees(row["coef_sum"], {"": "0.2949", "_length": "0.2580"}[suffix])


def test_separation_is_reported_not_hidden(published, released):
    for fits in (published, released):
        problems = fits[3]
        assert set(problems) == {f"model{k}{s}" for k in ("1_main_effects", "2_context_groups", "3_context_detailed")
                                 for s in ("", "_length")}
        assert all(p.startswith("separation suspected") for p in problems.values())


from tests.assets.test_analysis import imported  # noqa: E402,F401  (the fixture: a real `import-outputs` of the sample)


def test_the_import_path_gives_the_same_fits(imported, instance, published):
    import dagster as dg

    from warmth_assets.assets import analysis as analysis_assets

    warehouse, resources = imported
    assert resources["study"].settings.analysis == AnalysisSettings()  # the test configuration's [analysis]: defaults
    assert dg.materialize([analysis_assets.analysis_observations], instance=instance, resources=resources).success
    stored = warehouse.query_df("SELECT * FROM analysis_observations")
    assert int(stored["included"].sum()) == 315
    table, _, problems = fit_all(stored)
    ours = published[1].set_index(["analysis", "term"])
    assert set(problems) == set(published[3]) and len(table) == len(ours)
    for (name, term), row in table.set_index(["analysis", "term"]).iterrows():
        assert row["n_obs"] == ours.loc[(name, term), "n_obs"]
        assert row["coef"] == pytest.approx(ours.loc[(name, term), "coef"], rel=1e-5, abs=1e-8)
        assert row["log_likelihood"] == pytest.approx(ours.loc[(name, term), "log_likelihood"], rel=1e-10)
