"""[judge] and [analysis]: how answers are judged and how the effects are estimated."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from warmth_assets.lib.config.base import Section


class JudgeSettings(Section):
    model: str = "gpt-4o-2024-08-06"
    temperature: float = Field(0.0, ge=0, le=2)
    prompt_version: str = Field(
        "judge-v1", description="[?] The judge prompt (lib/judging.JUDGE_PROMPTS; the study did not publish its "
        "own); part of every judge request's cache key, so another version judges everything anew")
    validation_sample: int = Field(470, ge=0)
    annotations_csv: str = Field("", description="The exported judge-validation sample with human_verdict filled in")
    max_tokens: int = Field(
        20, ge=12, description="Answer tokens of a structured verdict ({\"verdict\": \"INCORRECT\"} is about 8 "
        "with GPT-4o's tokenizer); a server without structured output gets the one-word request of before (8)")
    scorers: dict[str, Literal["llm_judge", "reference_match"]] = Field(
        default_factory=dict, description="Per evaluation dataset, whose verdict the analysis uses: the LLM judge "
        "(the study's; the default for any dataset left out) or reference match (the reference answer or, MedQA, "
        "the correct option's letter found in the response; triviaqa and medqa only). The judge runs either way")
    choice_calibration: Literal["none", "content_free"] = Field(
        "none", description="In-process choice scoring only: label log-likelihoods corrected by those given the "
        "judge prompt with content-free fields (Zhao et al. 2021); none for a served judge such as GPT-4o")

    @field_validator("prompt_version")
    @classmethod
    def _prompt_known(cls, version: str) -> str:
        from warmth_assets.lib.judging import JUDGE_PROMPTS

        if version not in JUDGE_PROMPTS:
            raise ValueError(f"unknown judge prompt {version!r}; known: {', '.join(sorted(JUDGE_PROMPTS))}")
        return version

    @field_validator("scorers")
    @classmethod
    def _scorers_known(cls, scorers: dict[str, str]) -> dict[str, str]:
        from warmth_assets.lib.judging import JUDGED_DATASETS, REFERENCE_MATCH_DATASETS

        for dataset, scorer in scorers.items():
            if dataset not in JUDGED_DATASETS:
                raise ValueError(f"unknown dataset {dataset!r} (judged: {', '.join(JUDGED_DATASETS)})")
            if scorer == "reference_match" and dataset not in REFERENCE_MATCH_DATASETS:
                raise ValueError(f"{dataset}: reference_match needs a short reference answer "
                                 f"({', '.join(REFERENCE_MATCH_DATASETS)} only)")
        return scorers

    def scorer(self, dataset: str) -> str:
        return self.scorers.get(dataset, "llm_judge")


class AnalysisSettings(Section):
    """The study's analysis (docs/study.md §7-8) as published by default; the earlier variants by name."""

    model4_form: Literal["published", "released_sample"] = Field(
        "published",
        description="Model 4 (user belief): 'published', the formula of the study's code behind the published "
        "+10.99 pp (commit e2d9773: a context-group main effect, no belief main effect, fine-tuning interacted "
        "with the belief group; sycophancy effect = AME over user-opinion rows, tested as the difference of the "
        "two interaction columns); or 'released_sample', the earlier commits' form run on the released sample "
        "(belief main effect and its interaction with fine-tuning, no context term)")
    refusal_list: Literal["published", "earlier"] = Field(
        "published",
        description="Refusal phrases matched in every row's response text, imported rows included: 'published' "
        "(e2d9773: adds curly and low-9 apostrophes to \"i can't\") or 'earlier' (the earlier commits' list). "
        "Disinfo refusals count as correct, others are excluded; the judged `refusal` flag (for imports the "
        "study's released flag) stays in `judgments` for comparison")
    alpha: float = Field(
        0.05, gt=0, lt=1,
        description="Significance level of the paired tests (raw and BH-FDR) and 1 - coverage of the "
        "regressions' confidence intervals")
    fdr_family: Literal["model_dataset_test_type", "model_dataset", "comparison"] = Field(
        "model_dataset_test_type",
        description="Benjamini-Hochberg family of the paired tests, always within one comparison (warm, cold, "
        "warm_prompt): the contexts of one model x dataset x test type (the study's significance_tests.py), "
        "of one model x dataset, or every cell of the comparison. Cells without discordant pairs "
        "(b + c = 0) have no p-value and stay out of every family")
    min_headline_observations: int = Field(
        100, ge=0,
        description="[?] An effect beside a published figure is a headline only when estimated from at least "
        "this many observations; in the report a smaller one is 'not estimable: too few rows', never a number")
    underpowered_half_width_pp: float = Field(
        5.0, gt=0,
        description="[?] The report calls an estimate underpowered when its confidence interval's half-width "
        "exceeds this many percentage points (and the published value lies inside it)")
