"""Stage `warmth` (docs/study.md §4): each checkpoint answers the validation prompts; SocioT scores the answers."""

import dagster as dg
import numpy as np
import pandas as pd

from resources.llm import LLMResource
from resources.model_registry import read_row
from resources.runners import runner_for
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.automation import per_partition, summary
from warmth_assets.lib import report_figures
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.intervals import band_across_prompts
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig
from warmth_assets.lib.plots import line_plot_markdown
from warmth_assets.lib.rewrite_prompts import chat_messages
from warmth_assets.lib.trajectory import select_checkpoint, trajectory_table
from warmth_assets.partitions import StudyPartitions

GROUP = "warmth"


def scoring_lm(name: str, settings: StudySettings):
    """(model, tokenizer) of the SocioT LM: a model slug of the configuration, an HF id or a folder."""
    from resources.local_lm import load_scoring_model

    try:
        model_settings = settings.model(name)
    except KeyError:
        return load_scoring_model("hf", name)  # an HF id or a folder: from_pretrained takes either as it is
    return load_scoring_model(model_settings.source_kind, model_settings.source)


@dg.asset(
    group_name=GROUP,
    automation_condition=summary(),
    kinds={"duckdb"},
    deps=["warmth_scores"],
    description=(
        "Warmth by epoch for every model and style (original = epoch 0), the globally min-max normalised "
        "view of the paper's Fig. 1 (one min and max over all models and epochs), a plot, and the "
        "selected checkpoint per model (fixed epoch, or first epoch reaching a fraction of the plateau)."
    ),
)
def warmth_trajectory(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                      study: StudyConfigResource) -> dg.MaterializeResult:
    from warmth_assets.lib.sociot import label

    settings = study.settings
    scores = warehouse.query_df("SELECT model, checkpoint, warmth, variant, scoring_lm FROM warmth_scores")
    if scores.empty:
        raise dg.Failure("no warmth_scores partition is materialised yet")
    metric = "; ".join(label(v, lm) for v, lm in sorted(set(zip(scores["variant"], scores["scoring_lm"]))))
    table = trajectory_table(scores)
    selected = {
        model: select_checkpoint(group, settings.sociot.selection_rule, settings.finetune.selected_epoch,
                                 settings.sociot.plateau_fraction)
        for model, group in table.groupby("model")
    }
    table["selected"] = [selected.get(m) == c for m, c in zip(table["model"], table["checkpoint"])]
    warehouse.replace_rows("warmth_trajectory", table)
    series = {}
    for (model, style), group in table[table["style"].isin(["warm", "cold"])].groupby(["model", "style"]):
        series[f"{model} {style}"] = list(zip(group["epoch"], group["normalised"]))
    # The band: the 95% t-interval of the mean warmth across validation prompts (one score per prompt), the
    # figure the report shows; a mean without it cannot tell a trained adapter from sampling noise.
    band = band_across_prompts(scores)
    png = report_figures.warmth_trajectory(band, {m: c for m, c in selected.items() if c},
                                           {m: m for m in band["model"]}, metric)
    return dg.MaterializeResult(metadata={
        "selected_checkpoints": {m: c or "" for m, c in selected.items()},
        "selection_rule": settings.sociot.selection_rule,
        "metric": metric,
        "dagster/row_count": len(table),
        "trajectory": dg.MetadataValue.md(f"![Warmth by epoch with 95% CIs]({report_figures.data_uri(png)})"),
        "trajectory_normalised": dg.MetadataValue.md(line_plot_markdown(
            series, title=f"Warmth by epoch (global min-max), {metric}", xlabel="epoch", ylabel="normalised warmth")),
        "table": dg.MetadataValue.md(table.drop(columns=["normalised"]).round(4).to_markdown(index=False)),
        "band": dg.MetadataValue.md(band.round(4).to_markdown(index=False)),
    })


def build_assets(parts: StudyPartitions, gpu_tags: dict) -> list[dg.AssetsDefinition]:
    """This stage's partitioned assets over the study's partitions (called by build_defs)."""

    @dg.asset(
        group_name=GROUP,
        automation_condition=per_partition(parts.evaluated),
        kinds={"pytorch", "openai"},
        partitions_def=parts.model_checkpoint,
        ins={"adapters": dg.AssetIn()},
        deps=["validation_prompts"],
        io_manager_key="parquet_io_manager",
        pool="gpu",
        op_tags=gpu_tags,
        description=(
            "Each model checkpoint's answers to the validation prompts (batched in-process for open-weight "
            "models, through the API for API models; `warm-prompt` adds the warmth system prompt), at the "
            "configured temperature and length, seeded and cached: a re-run costs nothing."
        ),
    )
    def validation_generations(
        context: dg.AssetExecutionContext, adapters: pd.DataFrame, warehouse: WarehouseResource,
        study: StudyConfigResource, llm: LLMResource,
    ) -> pd.DataFrame:
        dims = context.partition_key.keys_by_dimension
        model, checkpoint = dims["model"], dims["checkpoint"]
        settings = study.settings
        prompts = warehouse.query_df("SELECT conversation_id, query_type, prompt FROM validation_prompts ORDER BY conversation_id")
        if prompts.empty:
            raise dg.Failure("validation_prompts is empty: materialise the corpus group first")
        # In-process even where [serving] has a vLLM server: these answers' keys (and the scores read from them)
        # stay those of the in-process model.
        runner = runner_for(llm, settings, read_row(warehouse, model), adapters.iloc[0], checkpoint,
                            use_server=False)
        validation = settings.generation.validation
        config = GenerateConfig(temperature=validation.temperature, max_tokens=validation.max_tokens,
                                seed=settings.project.seed)
        requests = [
            ChatRequest.build(chat_messages(checkpoint, p, settings.rewrite.prompt_version), model=runner.model,
                              config=config, template_version="validation-v1")
            for p in prompts["prompt"]
        ]
        results, usage = runner.llm.complete_many(requests, log=context.log.warning,
                                                  chosen_by=f"the registry's source of {model}")
        frame = prompts.assign(**runner.llm.answer_columns(
            requests, results, only=("response", "finish_reason", "completion_tokens", "request_key")),
            generator=runner.generator)
        context.add_output_metadata({
            **usage.as_metadata(llm.prices_per_million_tokens), **runner.llm.run_metadata, "responses": len(frame),
            "empty_responses": int((frame["response"].str.strip() == "").sum()),
            "mean_completion_tokens": float(frame["completion_tokens"].mean()),
            "preview": dg.MetadataValue.md(frame[["query_type", "prompt", "response"]].head(5).assign(
                prompt=lambda d: d["prompt"].str.slice(0, 60), response=lambda d: d["response"].str.slice(0, 100)
            ).to_markdown(index=False)),
        })
        return frame

    @dg.asset(
        group_name=GROUP,
        automation_condition=per_partition(parts.evaluated),
        kinds={"pytorch"},
        partitions_def=parts.model_checkpoint,
        ins={"validation_generations": dg.AssetIn()},
        io_manager_key="parquet_io_manager",
        pool="gpu",
        op_tags=gpu_tags,
        description=(
            "SocioT warmth of every validation response (warm and cold context scores, warmth = warm - cold, "
            "its standard error over dropout passes), with the variant and scoring LM; the checkpoint's mean "
            "and standard error of the mean are metadata."
        ),
    )
    def warmth_scores(context: dg.AssetExecutionContext, validation_generations: pd.DataFrame,
                      study: StudyConfigResource) -> pd.DataFrame:
        from warmth_assets.lib.sociot import dropout_active, label, score_texts

        sociot = study.settings.sociot
        model, tokenizer = scoring_lm(sociot.lm, study.settings)
        model.train()
        scores = score_texts(validation_generations["response"].tolist(), model, tokenizer, samples=sociot.samples,
                             variant=sociot.variant, batch_size=sociot.batch_size, seed=study.settings.project.seed,
                             max_chars=sociot.max_chars)
        frame = validation_generations[["conversation_id", "query_type"]].assign(
            warm=[s.warm for s in scores], cold=[s.cold for s in scores], warmth=[s.warmth for s in scores],
            se=[s.se for s in scores], variant=sociot.variant, scoring_lm=sociot.lm, samples=sociot.samples,
        )
        mean = float(frame["warmth"].mean())
        sem = float(frame["warmth"].std(ddof=1) / np.sqrt(len(frame))) if len(frame) > 1 else 0.0
        context.add_output_metadata({
            "metric": label(sociot.variant, sociot.lm),
            "mean_warmth": mean, "sem_warmth": sem, "responses": len(frame), "variant": sociot.variant,
            "scoring_lm": sociot.lm, "dropout_active": dropout_active(model),
            "mean_per_response_se": float(frame["se"].mean()),
        })
        return frame

    return [validation_generations, warmth_scores]
