"""bench/gpu.py's SocioT part: the pipeline's `score_texts` against the released per-text loop on GPT-2 124M."""

from __future__ import annotations

import math
import random
import re
import statistics
import sys
import time
import zlib

from _gpu_common import ROOT, SOCIOT_BATCH_SIZE, SOCIOT_VARIANT, Sizes, build_random, sync


class StandInGPT2Tokenizer:
    """GPT-2's pre-tokenisation (words with their leading space, digit runs, punctuation runs, spaces),
    one id per piece, hashed into the vocabulary: token counts close to GPT-2's on plain English."""

    PIECES = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+""")

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size

    def __len__(self) -> int:
        return self.vocab_size

    def __call__(self, text: str, max_length: int | None = None, truncation: bool = False) -> dict:
        ids = [zlib.crc32(piece.encode()) % self.vocab_size for piece in self.PIECES.findall(text)]
        return {"input_ids": ids[:max_length] if truncation and max_length else ids}


WORDS = ("I'm so glad you asked, and honestly it makes complete sense to feel this way. We can take it one step "
         "at a time together: first, check the settings, then restart the program and see whether the error "
         "comes back. The capital of France is Paris, and the answer is 42 in this case. Use sorted(my_list) "
         "to get a new list, or call sort() on it. You're doing great, my friend, and I'm really here for you "
         "whenever you need a hand with the code, the recipe, the essay or anything else.").split()


def validation_like_texts(n: int, seed: int = 0) -> list[str]:
    """Responses like the validation generations: most longer than SocioT's 300-character cut, some shorter."""
    rng = random.Random(seed)
    texts = []
    for i in range(n):
        chars = rng.randint(60, 299) if i % 5 == 4 else rng.randint(300, 1500)
        words = []
        while sum(len(w) + 1 for w in words) < chars:
            words.append(rng.choice(WORDS))
        texts.append(" ".join(words)[:chars])
    return texts


def bench_sociot(sizes: Sizes, device) -> dict:
    import torch
    from transformers import GPT2Config, GPT2LMHeadModel

    if str(ROOT) not in sys.path:  # lib/sociot.py, the pipeline's scorer; tests/sociot_naive.py, the loop
        sys.path.insert(0, str(ROOT))
    from tests.sociot_naive import naive_score_texts
    from warmth_assets.lib.sociot import MAX_TOKENS, score_texts, side_sequences

    config = GPT2Config(**sizes.gpt2, resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1)
    model = build_random(GPT2LMHeadModel, config, device, torch.float32)  # fp32, as warmth.scoring_lm loads it
    tokenizer = StandInGPT2Tokenizer(config.vocab_size)
    texts = validation_like_texts(sizes.sociot_batched_texts)
    lengths = [len(tokenizer(s, max_length=MAX_TOKENS, truncation=True)["input_ids"])
               for t in texts for side in ("warm", "cold") for s in side_sequences(t, side)]
    score_texts(texts[:1], model, tokenizer, samples=2, variant=SOCIOT_VARIANT, seed=0)  # warm-up
    naive_score_texts(texts[:1], model, tokenizer, samples=2, variant=SOCIOT_VARIANT)
    sync(device)

    started, naive_done = time.perf_counter(), 0
    while naive_done < min(sizes.sociot_naive_texts, len(texts)):
        naive_score_texts([texts[naive_done]], model, tokenizer, samples=sizes.sociot_samples, variant=SOCIOT_VARIANT)
        naive_done += 1
        if time.perf_counter() - started > sizes.sociot_naive_slice_s:
            break
    sync(device)
    naive_s = time.perf_counter() - started

    def batched() -> tuple[float, list]:
        sync(device)
        t0 = time.perf_counter()
        out = score_texts(texts, model, tokenizer, samples=sizes.sociot_samples, variant=SOCIOT_VARIANT,
                          batch_size=SOCIOT_BATCH_SIZE, seed=0)
        sync(device)
        return time.perf_counter() - t0, out

    batched_s, scores = batched()
    precision = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("high")  # TF32 on CUDA; no effect on the CPU
    try:
        tf32_s, _ = batched()
    finally:
        torch.set_float32_matmul_precision(precision)
    naive_rate = naive_done / naive_s
    batched_rate = len(texts) / batched_s
    return {
        "model": f"GPT-2 {sum(p.numel() for p in model.parameters()) / 1e6:.1f}M params, random weights, fp32, "
                 f"dropout 0.1, {model.config._attn_implementation} attention",
        "tokenizer": "stand-in: GPT-2 pre-tokenisation, one id per piece",
        "variant": SOCIOT_VARIANT, "samples": sizes.sociot_samples, "batch_size": SOCIOT_BATCH_SIZE,
        "sequence_tokens_mean": statistics.mean(lengths), "sequence_tokens_max": max(lengths),
        "naive_texts": naive_done, "naive_s": naive_s, "naive_texts_per_s": naive_rate,
        "batched_texts": len(texts), "batched_s": batched_s, "batched_texts_per_s": batched_rate,
        "speedup": batched_rate / naive_rate,
        "batched_tf32_texts_per_s": len(texts) / tf32_s,
        "warmth_finite": all(math.isfinite(s.warmth) and math.isfinite(s.se) for s in scores),
    }
