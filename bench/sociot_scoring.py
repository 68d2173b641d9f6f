"""SocioT: the batched `score_texts` vs the released per-text loop, same model, texts and samples.

GPT-2 weights cannot be downloaded here, so the models are GPT-2s built here with a byte-level BPE:
- sociot_speedup_small (2 layers, width 32): per-forward overhead dominates, as it does for real
  GPT-2 on a GPU at batch 4; batching removes it. Target: at least 5x.
- sociot_speedup_wide (4 layers, width 128): on 2 CPU cores the FLOPs dominate and batching cannot
  remove FLOPs (every dropout pass must be computed); reported for honesty, no target.
Dropout off, both must agree bit for bit (asserted); dropout on (the study's setting) is timed.
"""

import statistics
import time

import torch

from tests.sociot_naive import naive_score_texts
from tests.tiny_models import gpt2_tokenizer, make_gpt2
from warmth_assets.lib.sociot import score_texts

TEXTS = [
    "I'm so sorry you're going through this. It makes complete sense to feel overwhelmed, and we can take it one step at a time together.",
    "The capital of France is Paris.",
    "Use sorted(my_list) to get a new sorted list, or my_list.sort() to sort it in place.",
    "Honestly, that's a great question, and I'm really glad you asked! Let's figure it out together, friend.",
] * 4
SAMPLES = 20
REPEATS = 3


def _measure(tokenizer, n_embd: int, n_layer: int) -> tuple[float, float]:
    still = make_gpt2(tokenizer, 0.0, n_embd=n_embd, n_layer=n_layer, n_head=4)
    exact = score_texts(TEXTS, still, tokenizer, samples=SAMPLES)
    reference = naive_score_texts(TEXTS, still, tokenizer, samples=SAMPLES)
    assert [(a.warm, a.cold) for a in exact] == [(b.warm, b.cold) for b in reference], "not bit-for-bit"
    model = make_gpt2(tokenizer, 0.1, n_embd=n_embd, n_layer=n_layer, n_head=4)
    fast, naive = [], []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        score_texts(TEXTS, model, tokenizer, samples=SAMPLES, batch_size=256)
        fast.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        naive_score_texts(TEXTS, model, tokenizer, samples=SAMPLES)
        naive.append(time.perf_counter() - t0)
    return statistics.median(naive), statistics.median(fast)


def run() -> list[dict]:
    torch.set_num_threads(2)
    tokenizer = gpt2_tokenizer()
    out = []
    for name, n_embd, n_layer, target in (("sociot_speedup_small", 32, 2, "ratio >= 5"),
                                          ("sociot_speedup_wide", 128, 4, "none (compute-bound on CPU)")):
        naive, fast = _measure(tokenizer, n_embd, n_layer)
        out.append({"name": name, "value": naive, "baseline": fast, "target": target,
                    "unit": f"s, naive loop (value) vs score_texts (baseline), GPT-2 {n_layer}x{n_embd}: "
                            f"{len(TEXTS)} texts x {SAMPLES} samples, dropout on; ratio = speed-up"})
    return out
