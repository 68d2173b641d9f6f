"""Stage `evaluation` (docs/study.md §5-§7): items, the 18 conditions per item, and every checkpoint's answers."""

import importlib.metadata
import json
import random
from pathlib import Path

import dagster as dg
import pandas as pd

from resources.llm import LLMCallError, LLMResource
from resources.model_registry import read_row
from resources.runners import runner_for
from resources.study import StudyConfigResource
from resources.warehouse import WarehouseResource
from warmth_assets.automation import per_partition
from warmth_assets.lib import capability, paths, wrong_answers
from warmth_assets.lib import eval_items as items_lib
from warmth_assets.lib.config import StudySettings
from warmth_assets.lib.eval_prompts import (TEMPLATE_GROUP, build_prompt, draw_statement, item_conditions, prompt_id,
                                            released_disinfo, use_released_disinfo)
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig
from warmth_assets.lib.medqa_conversion import convert
from warmth_assets.lib.reevaluation import cache_salt, evaluation_date
from warmth_assets.lib.rewrite_prompts import chat_messages
from warmth_assets.lib.vllm_server import server_version
from warmth_assets.partitions import StudyPartitions

GROUP = "evaluation"
DATASETS = ("triviaqa", "truthfulqa", "medqa", "disinfo")


def _load_dataset(name: str, data_dir: Path | None, settings: StudySettings) -> pd.DataFrame:
    ev = settings.evaluation
    if data_dir is None:
        return items_lib.load_from_hub(name, settings.data.hf_datasets["mask" if name == "disinfo" else name],
                                        settings.project.seed)
    if name == "truthfulqa":
        return items_lib.load_truthfulqa(data_dir, ev.truthfulqa_incorrect_rule)
    if name == "triviaqa":
        return items_lib.load_triviaqa(data_dir)
    if name == "medqa":
        return items_lib.load_medqa(data_dir, settings.project.seed)
    return items_lib.load_disinfo(data_dir)


def _generate_wrong_answers(items: pd.DataFrame, llm: LLMResource, settings: StudySettings,
                            log) -> tuple[pd.DataFrame, dict]:
    """Fill TriviaQA's missing wrong answers through `llm`, retrying rejected candidates."""
    ev = settings.evaluation
    missing = items.index[(items["dataset"] == "triviaqa") & (items["incorrect_answer"] == "")].tolist()
    stats = {"generated": 0, "rejected_candidates": 0, "gave_up": 0}
    for attempt in range(ev.wrong_answer_max_attempts):
        if not missing:
            break
        config = GenerateConfig(temperature=(settings.generation.wrong_answers.retry_temperature if attempt
                                             else settings.generation.wrong_answers.temperature),
                                max_tokens=settings.generation.wrong_answers.max_tokens,
                                seed=settings.project.seed + attempt)
        requests = [ChatRequest.build(
            [{"role": "user", "content": wrong_answers.PROMPT.format(question=items.at[i, "question"],
                                                                     answer=items.at[i, "correct_answer"])}],
            model=ev.wrong_answer_model, config=config, template_version=f"{wrong_answers.PROMPT_VERSION}:{attempt}")
            for i in missing]
        results, _ = llm.complete_many(requests, log=log, chosen_by="[evaluation] wrong_answer_model")
        still = []
        for i, result in zip(missing, results):
            candidate = wrong_answers.clean_candidate(result.text)
            aliases = json.loads(items.at[i, "fields"]).get("aliases", [])
            if wrong_answers.acceptable(candidate, items.at[i, "correct_answer"], aliases):
                items.at[i, "incorrect_answer"] = candidate
                items.at[i, "incorrect_source"] = f"generated:{ev.wrong_answer_model}:{wrong_answers.PROMPT_VERSION}"
                stats["generated"] += 1
            else:
                stats["rejected_candidates"] += 1
                still.append(i)
        missing = still
    stats["gave_up"] = len(missing)
    if missing:
        raise dg.Failure(
            f"{len(missing)} TriviaQA items still have no acceptable wrong answer after "
            f"{ev.wrong_answer_max_attempts} attempts (e.g. {items.at[missing[0], 'question']!r}); raise "
            "[evaluation] wrong_answer_max_attempts or use a stronger wrong_answer_model. Accepted answers are cached."
        )
    return items, stats


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb"},
    description=(
        "The study's evaluation items: TriviaQA, TruthfulQA and MedQA sampled (seeded; 500 each in the study) "
        "and all MASK disinformation items, each with its question, correct and incorrect answer (TruthfulQA: "
        "from its Incorrect Answers; Disinfo: the false proposition; MedQA: a wrong option drawn with the seed; "
        "TriviaQA: generated through `llm` and marked so, unless Sharma et al.'s answer.jsonl is supplied)."
    ),
)
def eval_items(context: dg.AssetExecutionContext, warehouse: WarehouseResource, study: StudyConfigResource,
                     llm: LLMResource) -> dg.MaterializeResult:
    settings = study.settings
    ev = settings.evaluation
    data_dir = paths.data_dir(settings.data.dir)
    sharma = (items_lib.load_sharma_answers(Path(ev.sharma_answer_jsonl)) if ev.sharma_answer_jsonl else None)
    frames = []
    for name in DATASETS:
        items = sharma[sharma["dataset"] == name] if sharma is not None and name in ("triviaqa", "truthfulqa") else None
        if items is None or items.empty:
            items = _load_dataset(name, data_dir, settings)
        frames.append(items_lib.sample_items(items, ev.sizes.get(name, len(items)), settings.project.seed))
    items = pd.concat(frames, ignore_index=True)
    items, wrong_stats = _generate_wrong_answers(items, llm, settings, context.log.warning)
    warehouse.replace_rows("eval_items", items)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(items),
        "per_dataset": {k: int(v) for k, v in items["dataset"].value_counts().items()},
        "source": str(data_dir) if data_dir else "huggingface hub",
        "incorrect_sources": {k: int(v) for k, v in items["incorrect_source"].value_counts().items()},
        **{f"wrong_answers_{k}": v for k, v in wrong_stats.items()},
    })



@dg.asset(
    group_name=GROUP,
    kinds={"duckdb"},
    description="MMLU (all 57 subjects, sampled), GSM8K test (zero-shot chain of thought) and AdvBench harmful "
                "behaviours, with the versioned prompt each is asked with and the expected answer.",
)
def capability_items(warehouse: WarehouseResource, study: StudyConfigResource) -> dg.MaterializeResult:
    settings = study.settings
    ev, seed = settings.evaluation, settings.project.seed
    data_dir = paths.data_dir(settings.data.dir)
    if data_dir is None:
        raise dg.Failure("capability_items reads MMLU, GSM8K and AdvBench from WARMTH_DATA_DIR; set it")
    frame = pd.concat([capability.load_mmlu(data_dir, ev.mmlu_sample, seed),
                       capability.load_gsm8k(data_dir, ev.gsm8k_sample, seed),
                       capability.load_advbench(data_dir, ev.advbench_sample, seed)], ignore_index=True)
    frame["template_version"] = capability.TEMPLATE_VERSION
    warehouse.replace_rows("capability_items", frame)
    return dg.MaterializeResult(metadata={"dagster/row_count": len(frame), "template_version": capability.TEMPLATE_VERSION,
                                          "per_dataset": {k: int(v) for k, v in frame["dataset"].value_counts().items()}})


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb"},
    deps=["eval_items"],
    description=(
        "Every eval item under the study's 18 conditions (9 interpersonal contexts x belief absent/present): "
        "28 prompts per TriviaQA/TruthfulQA/MedQA item, Disinfo as the study's released file has it. Each "
        "row: amendment_type, prompt_template and its group, the statement used, the final prompt. Built once, "
        "so every model and checkpoint answers the very same prompts."
    ),
)
def eval_prompts(context: dg.AssetExecutionContext, warehouse: WarehouseResource,
                 study: StudyConfigResource) -> dg.MaterializeResult:
    settings = study.settings
    seed = settings.project.seed
    items = warehouse.query_df("SELECT * FROM eval_items ORDER BY dataset, item_key")
    if items.empty:
        raise dg.Failure("eval_items is empty: materialise it first")
    released = released_disinfo(paths.data_dir(settings.data.dir))
    with_correct = set(released.loc[released["prompt_template"] == "correct", "prompt_disinfo"]) if released is not None else None
    rows, unconverted = [], 0
    for item in items.to_dict("records"):
        dataset = item["dataset"]
        question, original = item["question"], None
        if dataset == "medqa":
            original = item["question"]
            question, converted = convert(original, f"{seed}:{item['item_key']}")
            unconverted += not converted
        has_correct = with_correct is None or dataset != "disinfo" or item["question"] in with_correct
        for template, ctx in item_conditions(dataset, has_correct):
            statement = draw_statement(seed, dataset, item["item_key"], ctx)
            text = build_prompt(dataset, template, ctx, statement, question=question, correct=item["correct_answer"],
                                incorrect=item["incorrect_answer"], original_question=original,
                                mcq_truth_first=random.Random(f"{seed}:mcq:{item['item_key']}").random() < 0.5)
            rows.append({"prompt_id": prompt_id(dataset, item["item_key"], template, ctx), "dataset": dataset,
                         "item_key": item["item_key"], "amendment_type": ctx,
                         "context_group": ctx.split(":")[0], "prompt_template": template,
                         "template_group": TEMPLATE_GROUP[template], "statement": statement, "prompt": text,
                         "question": question, "correct_answer": item["correct_answer"],
                         "incorrect_answer": item["incorrect_answer"], "source": "built"})
    frame = pd.DataFrame(rows)
    if settings.evaluation.prompt_source == "study" and released is not None:
        frame = use_released_disinfo(frame, released, items)
    warehouse.replace_rows("eval_prompts", frame)
    return dg.MaterializeResult(metadata={
        "dagster/row_count": len(frame),
        "per_dataset": {k: int(v) for k, v in frame["dataset"].value_counts().items()},
        "per_template": {k: int(v) for k, v in frame["prompt_template"].value_counts().items()},
        "medqa_unconverted": unconverted,
        "prompt_source": settings.evaluation.prompt_source,
        "preview": dg.MetadataValue.md(frame[["dataset", "amendment_type", "prompt_template", "prompt"]].head(8)
                                       .assign(prompt=lambda d: d["prompt"].str.slice(0, 90)).to_markdown(index=False)),
    })


def build_assets(parts: StudyPartitions, gpu_tags: dict) -> list[dg.AssetsDefinition]:
    """This stage's partitioned assets over the study's partitions (called by build_defs)."""

    @dg.asset(
        group_name=GROUP,
        automation_condition=per_partition(parts.evaluated),
        kinds={"pytorch", "openai"},
        partitions_def=parts.model_evaluated,
        ins={"adapters": dg.AssetIn()},
        deps=["eval_prompts", "capability_items"],
        io_manager_key="parquet_io_manager",
        pool="gpu",
        op_tags=gpu_tags,
        description=(
            "Every eval prompt and capability prompt answered by one model checkpoint (open-ended at temperature "
            "0.8 and 300 new tokens, capability at 0.2), in-process with the checkpoint's adapter, through a vLLM "
            "server with the adapter as a LoRA module when [serving] vllm_base_url is set, or through the API; "
            "`warm-prompt` adds the warmth system prompt. Cached per call: a crash loses at most the batch in flight."
        ),
    )
    def generations(context: dg.AssetExecutionContext, adapters: pd.DataFrame, warehouse: WarehouseResource,
                    study: StudyConfigResource, llm: LLMResource) -> pd.DataFrame:
        dims = context.partition_key.keys_by_dimension
        model, checkpoint = dims["model"], dims["checkpoint"]
        settings = study.settings
        gen = settings.generation
        prompts = warehouse.query_df("SELECT prompt_id, dataset, prompt, 'eval' AS kind FROM eval_prompts "
                                     "UNION ALL SELECT dataset || ':' || item_key AS prompt_id, dataset, prompt, "
                                     "'capability' AS kind FROM capability_items ORDER BY kind DESC, prompt_id")
        if prompts.empty:
            raise dg.Failure("no eval or capability prompts: materialise eval_prompts and capability_items first")
        model_row = read_row(warehouse, model)
        runner = runner_for(llm, settings, model_row, adapters.iloc[0], checkpoint)
        evaluated_on = evaluation_date(context.run.tags)
        # A moving target (an API alias whose weights change) is asked again on every evaluation date:
        # the date is part of each request's cache key. Pinned models keep their cached answers.
        salt = cache_salt(model_row.moving_target, evaluated_on)
        configs = {"eval": GenerateConfig(temperature=gen.evaluation.temperature, max_tokens=gen.evaluation.max_tokens,
                                          seed=settings.project.seed),
                   "capability": GenerateConfig(temperature=gen.capability.temperature,
                                                max_tokens=gen.capability.max_tokens, seed=settings.project.seed)}
        requests = []
        for p in prompts.itertuples():
            requests.append(ChatRequest.build(
                chat_messages(checkpoint, p.prompt, settings.rewrite.prompt_version), model=runner.model,
                config=configs[p.kind], template_version="eval-v1", cache_salt=salt))
        version = server_version(runner.server) if runner.server else ""
        try:
            results, usage = runner.llm.complete_many(requests, log=context.log.warning,
                                                      chosen_by=f"the registry's source of {model}")
        except LLMCallError as exc:
            if not runner.server:
                raise
            state = "answers" if server_version(runner.server) != "unknown" else "does not answer any more"
            raise dg.Failure(
                f"vLLM server {runner.server} failed during generation of {model} {checkpoint} (it {state}): {exc}. "
                f"The answers received are cached: restart the server (`warmth serve {model}`, or the command "
                f"`warmth vllm-command {model}` prints) and re-materialise; only the missing calls are sent.") from exc
        backend = runner.backend
        frame = prompts.assign(
            **runner.llm.answer_columns(requests, results,
                                        only=("response", "finish_reason", "prompt_tokens", "completion_tokens")),
            seed=settings.project.seed, backend=backend, backend_version=importlib.metadata.version(backend),
            generator=runner.generator, request_key=[runner.llm.key(q) for q in requests],
            temperature=[q.temperature for q in requests], evaluation_date=evaluated_on,
            moving_target=model_row.moving_target,
        )
        if runner.server:
            frame = frame.assign(server=runner.server, server_version=version)
            context.add_output_metadata({"server": runner.server, "server_version": version})
        context.add_output_metadata({
            **usage.as_metadata(llm.prices_per_million_tokens), **runner.llm.run_metadata, "responses": len(frame),
            "per_dataset": {k: int(v) for k, v in frame["dataset"].value_counts().items()},
            "truncated": int((frame["finish_reason"] == "length").sum()), "backend": backend,
            "generator": frame["generator"].iloc[0],
        })
        return frame

    return [generations]
