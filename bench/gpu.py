"""GPU check: SocioT scoring, LoRA training and batched generation at the study's sizes, random weights.

    python bench/gpu.py [--out PATH] [--tiny] [--peak-tflops T]     (make gpu-check: the same with .venv)

Needs only torch, transformers and peft (and the standard library): no hub, no data, nothing else of
this project but `warmth_assets/lib/sociot.py` (pure Python, torch imported lazily), so it runs on a bare
GPU machine with a copy of this repository. Models have the real architectures and random weights,
built directly on the device (torch's and transformers' initialisers are skipped, the weights are
then drawn on the device itself, so no 8B model ever exists on the CPU):

- SocioT: GPT-2 124M (the study's scorer: 12 layers, width 768, vocabulary 50257, dropout 0.1), fp32
  as the pipeline loads it, the reference variant with 100 dropout passes: `score_texts` (batched,
  the `[sociot] batch_size` of 64 sequences per forward pass) against `naive_score_texts` (the released
  per-text loop: 200 forward passes of batch 4 per text), in texts per second. Also `score_texts`
  with TF32 matmuls allowed (the pipeline leaves them off). GPT-2's BPE files come from the hub, so the
  tokenizer is a stand-in: GPT-2's pre-tokenisation pattern, one id per piece (about GPT-2's token
  count for plain English; GPT-2 splits rare words further, so real sequences are somewhat longer).
- LoRA training: a Llama-3.1-8B configuration in bf16, the study's LoRA (r 8, alpha 16, dropout 0.1,
  all linear layers, lr 1e-5), sequences of 1024 tokens, micro-batch 1 x 16 accumulation steps
  (effective batch 16, `per_device_batch_size = 1` as configured), loss on the last three quarters of
  each sequence. The loop is the Trainer's inner step written out (the Trainer itself needs
  `accelerate`): bf16 autocast, loss / 16, backward, gradient clipping at 1.0, AdamW. Tokens/s counts
  every input token; MFU = achieved model FLOPs / the device's dense bf16 peak, model FLOPs per token
  counted for LoRA: 4 N (forward 2 N, backward through the frozen weights 2 N: activation gradients
  only, no weight gradients) + 6 N_lora + 12 L d T (attention scores and values, forward and backward,
  not halved for causality, as PaLM counts them), N = weights of the linear layers (lm_head included,
  embedding excluded). `mfu_6n` is the same with 6 N, the full fine-tuning convention often quoted.
- Generation: the trained adapter saved at two checkpoints, loaded as the pipeline does
  (`PeftModel.from_pretrained`, then `load_adapter`), `set_adapter` between them; left-padded batches
  of the `[generation] batch_size` (16, and 64), sampling at temperature 0.8, tokens counted up to the
  first EOS as `LocalLMResource.generate` counts them; against one prompt at a time.

Without a GPU (or with --tiny) the same code runs tiny configurations in seconds and says so; its
figures say nothing about GPU speed. `make bench` does not run this file (bench/__main__.py skips it).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import re
import statistics
import sys
import tempfile
import time
import zlib
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# The study's settings (docs/study.md §3-4, dagster_project.toml), identical in the tiny configuration.
LORA_R, LORA_ALPHA, LORA_DROPOUT, LEARNING_RATE, MAX_GRAD_NORM = 8, 16, 0.1, 1e-5, 1.0
SOCIOT_VARIANT, SOCIOT_BATCH_SIZE = "reference", 64
TEMPERATURE = 0.8

# Dense bf16 tensor-core peak, TFLOP/s (vendor data sheets, without sparsity); most specific name first.
PEAK_BF16_TFLOPS = (
    ("H200 NVL", 835.0), ("H100 NVL", 835.0), ("H100 PCIe", 756.0), ("GH200", 989.4), ("H200", 989.4),
    ("H100", 989.4), ("B200", 2250.0), ("A100", 312.0), ("L40S", 362.1), ("A10G", 70.0), ("L4", 121.0),
)


@dataclass(frozen=True)
class Sizes:
    gpt2: dict
    sociot_samples: int  # dropout passes per side and text (the study: 100)
    sociot_naive_texts: int  # at most this many texts through the naive loop (fewer if naive_slice_s runs out)
    sociot_naive_slice_s: float
    sociot_batched_texts: int
    llama: dict
    seq_len: int
    effective_batch: int
    micro_batch: int
    train_min_steps: int  # measured optimizer steps (after one warm-up step); more while train_slice_s lasts
    train_max_steps: int
    train_slice_s: float
    gen_batch_sizes: tuple
    gen_prompt_tokens: tuple  # (shortest, longest) prompt
    gen_new_tokens: int
    gen_single_prompts: int


LLAMA_31_8B = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
    num_key_value_heads=8, max_position_embeddings=131072, rms_norm_eps=1e-5, tie_word_embeddings=False,
    bos_token_id=128000, eos_token_id=128009, pad_token_id=128004,
    rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                     "high_freq_factor": 4.0, "original_max_position_embeddings": 8192},
)

FULL = Sizes(
    gpt2=dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12),
    sociot_samples=100, sociot_naive_texts=6, sociot_naive_slice_s=12.0, sociot_batched_texts=16,
    llama=LLAMA_31_8B, seq_len=1024, effective_batch=16, micro_batch=1,
    train_min_steps=2, train_max_steps=5, train_slice_s=25.0,
    gen_batch_sizes=(16, 64), gen_prompt_tokens=(64, 192), gen_new_tokens=128, gen_single_prompts=1,
)

TINY = Sizes(
    gpt2=dict(vocab_size=256, n_positions=1024, n_embd=32, n_layer=2, n_head=2, bos_token_id=255, eos_token_id=255),
    sociot_samples=10, sociot_naive_texts=1, sociot_naive_slice_s=2.0, sociot_batched_texts=2,
    llama=dict(LLAMA_31_8B, vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, bos_token_id=1, eos_token_id=2, pad_token_id=0),
    seq_len=32, effective_batch=4, micro_batch=1,
    train_min_steps=2, train_max_steps=2, train_slice_s=2.0,
    gen_batch_sizes=(2, 4), gen_prompt_tokens=(4, 12), gen_new_tokens=8, gen_single_prompts=1,
)


def log(message: str) -> None:
    print(f"[gpu-check] {message}", flush=True)


# ---------------------------------------------------------------------------------------------- helpers


def peak_bf16_tflops(device_name: str) -> float | None:
    for key, value in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return value
    return None


def lora_flops_per_token(n_matmul: int, n_lora: int, layers: int, width: int, seq_len: int) -> float:
    """Model FLOPs per trained token with a frozen base: 4 N + 6 N_lora + 12 L d T (see the docstring)."""
    return 4.0 * n_matmul + 6.0 * n_lora + 12.0 * layers * width * seq_len


def full_flops_per_token(n_matmul: int, layers: int, width: int, seq_len: int) -> float:
    """The full fine-tuning convention: 6 N + 12 L d T."""
    return 6.0 * n_matmul + 12.0 * layers * width * seq_len


def sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


@contextmanager
def _skip_init():
    """No weight initialisation while a model is constructed (the weights are drawn on the device after)."""
    try:
        from transformers.initialization import no_init_weights
    except ImportError:  # older transformers kept it here
        from transformers.modeling_utils import no_init_weights
    with no_init_weights():
        yield


def build_random(model_cls, config, device, dtype, seed: int = 0):
    """`model_cls(config)` allocated directly on `device` in `dtype`, with random weights drawn there:
    N(0, 0.02) for matrices, 1 for norm weights, 0 for biases; tied embeddings tied."""
    import torch

    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device), _skip_init():
            model = model_cls(config)
    finally:
        torch.set_default_dtype(previous)
    if getattr(config, "tie_word_embeddings", False):
        model.tie_weights()
        if model.get_output_embeddings().weight is not model.get_input_embeddings().weight:
            model.get_output_embeddings().weight = model.get_input_embeddings().weight
    generator = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.normal_(0.0, 0.02, generator=generator)
            elif name.endswith("bias"):
                param.zero_()
            else:
                param.fill_(1.0)
    return model


def linear_weights(model) -> int:
    """Parameters of the linear layers (the matmul weights; for GPT-2 its Conv1D layers and tied lm_head)."""
    import torch

    total = 0
    for module in model.modules():
        weight = getattr(module, "weight", None)
        if isinstance(module, torch.nn.Linear) or type(module).__name__ == "Conv1D":
            total += weight.numel()
    return total


# ---------------------------------------------------------------------------------------------- SocioT


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

    if str(ROOT) not in sys.path:  # warmth_assets/lib/sociot.py: the pipeline's own scoring code
        sys.path.insert(0, str(ROOT))
    from warmth_assets.lib.sociot import MAX_TOKENS, naive_score_texts, score_texts, side_sequences

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


# ---------------------------------------------------------------------------------------------- LoRA


def bench_lora(sizes: Sizes, device, workdir: Path, peak_tflops: float | None):
    """Returns (results, the trained peft model, [adapter folders of two checkpoints])."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    on_cuda = device.type == "cuda"
    config = LlamaConfig(**sizes.llama)
    build_started = time.perf_counter()
    base = build_random(LlamaForCausalLM, config, device, torch.bfloat16 if on_cuda else torch.float32)
    sync(device)
    build_s = time.perf_counter() - build_started
    n_params = sum(p.numel() for p in base.parameters())
    n_matmul = linear_weights(base)
    log(f"Llama ({config.num_hidden_layers} layers, width {config.hidden_size}): {n_params / 1e9:.3f}B params "
        f"built on {device} in {build_s:.1f} s")
    model = get_peft_model(base, LoraConfig(r=LORA_R, lora_alpha=LORA_ALPHA, lora_dropout=LORA_DROPOUT,
                                            target_modules="all-linear", task_type="CAUSAL_LM"))
    trainable = [p for p in model.parameters() if p.requires_grad]
    n_lora = sum(p.numel() for p in trainable)
    # The Trainer's default optimizer (adamw_torch_fused on CUDA).
    optimizer = torch.optim.AdamW(trainable, lr=LEARNING_RATE, fused=on_cuda or None)
    accumulation = sizes.effective_batch // sizes.micro_batch
    generator = torch.Generator(device=device).manual_seed(0)
    pool = []
    for _ in range(4):
        ids = torch.randint(3, config.vocab_size, (sizes.micro_batch, sizes.seq_len), device=device,
                            generator=generator)
        labels = ids.clone()
        labels[:, : sizes.seq_len // 4] = -100  # the user turn: no loss, as the pipeline's SFT rows
        pool.append((ids, labels))
    model.train()
    losses = []

    def optimizer_step():
        total = 0.0
        for micro in range(accumulation):
            ids, labels = pool[micro % len(pool)]
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=on_cuda):  # Trainer(bf16=True)
                loss = model(input_ids=ids, labels=labels).loss / accumulation
            loss.backward()
            total += loss.detach()
        torch.nn.utils.clip_grad_norm_(trainable, MAX_GRAD_NORM)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(total))  # the Trainer logs every step (logging_steps=1): one sync per step

    if on_cuda:
        torch.cuda.reset_peak_memory_stats(device)
    optimizer_step()  # warm-up: kernels chosen, optimizer state allocated
    checkpoints = [workdir / "ckpt1"]
    model.save_pretrained(checkpoints[0])
    sync(device)
    started, steps = time.perf_counter(), 0
    while steps < sizes.train_min_steps or (steps < sizes.train_max_steps
                                            and time.perf_counter() - started < sizes.train_slice_s):
        optimizer_step()
        steps += 1
    sync(device)
    train_s = time.perf_counter() - started
    checkpoints.append(workdir / "ckpt2")
    model.save_pretrained(checkpoints[1])
    tokens = steps * sizes.effective_batch * sizes.seq_len
    tokens_per_s = tokens / train_s
    flops_lora = lora_flops_per_token(n_matmul, n_lora, config.num_hidden_layers, config.hidden_size, sizes.seq_len)
    flops_full = full_flops_per_token(n_matmul, config.num_hidden_layers, config.hidden_size, sizes.seq_len)
    peak = peak_tflops * 1e12 if peak_tflops else None
    results = {
        "model": f"Llama-3.1-8B configuration ({config.num_hidden_layers} layers, width {config.hidden_size}, "
                 f"vocabulary {config.vocab_size}), random weights, {'bf16' if on_cuda else 'fp32'}, "
                 f"{base.config._attn_implementation} attention",
        "params": n_params, "linear_params": n_matmul, "lora_params": n_lora, "build_s": build_s,
        "r": LORA_R, "alpha": LORA_ALPHA, "dropout": LORA_DROPOUT, "target_modules": "all-linear",
        "seq_len": sizes.seq_len, "micro_batch": sizes.micro_batch, "gradient_accumulation": accumulation,
        "effective_batch": sizes.effective_batch, "optimizer_steps": steps, "train_s": train_s,
        "s_per_optimizer_step": train_s / steps, "tokens_per_s": tokens_per_s,
        "flops_per_token": flops_lora, "flops_per_token_6n": flops_full,
        "flops_note": "LoRA: 4N + 6N_lora + 12LdT per token (no weight gradients for the frozen base); "
                      "6n: 6N + 12LdT (full fine-tuning convention); N = linear-layer weights",
        "achieved_tflops": tokens_per_s * flops_lora / 1e12,
        "peak_bf16_tflops": peak_tflops,
        "mfu": tokens_per_s * flops_lora / peak if peak else None,
        "mfu_6n": tokens_per_s * flops_full / peak if peak else None,
        "loss_last": losses[-1],
        "peak_memory_gib": torch.cuda.max_memory_allocated(device) / 2**30 if on_cuda else None,
    }
    del optimizer
    return results, model, checkpoints


# ---------------------------------------------------------------------------------------------- generation


def bench_generation(sizes: Sizes, device, trained, checkpoints: list[Path], deadline: float = math.inf) -> dict:
    """Batch sizes after the first are skipped once time.perf_counter() has passed `deadline`."""
    import torch
    from peft import PeftModel

    base = trained.unload()  # the base model again, LoRA layers removed (not merged)
    del trained
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    config = base.config
    started = time.perf_counter()
    model = PeftModel.from_pretrained(base, str(checkpoints[0]), adapter_name="ckpt1")  # as warmth_resources.local_lm
    model.load_adapter(str(checkpoints[1]), adapter_name="ckpt2")
    sync(device)
    load_s = time.perf_counter() - started
    model.eval()
    pad, eos = config.pad_token_id, config.eos_token_id
    rng = random.Random(0)

    def batch(n: int):
        rows = [[rng.randrange(3, config.vocab_size) for _ in range(rng.randint(*sizes.gen_prompt_tokens))]
                for _ in range(n)]
        width = max(len(r) for r in rows)  # left padding, as LocalLMResource pads for decoder-only models
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        return ids, mask

    def generate(ids, mask, new_tokens: int) -> int:
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, do_sample=True,
                                 temperature=TEMPERATURE, top_p=1.0, top_k=None, pad_token_id=pad)
        sync(device)
        count = 0
        for row in out[:, ids.shape[1]:]:  # up to the first EOS, as LocalLMResource.generate counts
            ended = (row == eos).nonzero()
            count += int(ended[0]) if len(ended) else len(row)
        return count

    torch.manual_seed(0)
    generate(*batch(2), 4)  # warm-up
    results = {"model": "the LoRA run's base with its two checkpoints' adapters", "temperature": TEMPERATURE,
               "new_tokens": sizes.gen_new_tokens, "prompt_tokens": list(sizes.gen_prompt_tokens),
               "adapter_load_s": load_s, "batched": {}}
    swaps = []
    for size in sizes.gen_batch_sizes:
        if results["batched"] and time.perf_counter() > deadline:
            results["batched"][str(size)] = "skipped: time budget"
            continue
        prompts = {name: batch(size) for name in ("ckpt1", "ckpt2")}
        tokens, t0 = 0, time.perf_counter()
        for name in ("ckpt1", "ckpt2"):  # one batch per checkpoint, the adapter swapped in between
            s0 = time.perf_counter()
            model.set_adapter(name)
            sync(device)
            swaps.append(time.perf_counter() - s0)
            tokens += generate(*prompts[name], sizes.gen_new_tokens)
        elapsed = time.perf_counter() - t0
        results["batched"][str(size)] = {"tokens": tokens, "s": elapsed, "tokens_per_s": tokens / elapsed}
    tokens, t0 = 0, time.perf_counter()
    for _ in range(sizes.gen_single_prompts):
        tokens += generate(*batch(1), sizes.gen_new_tokens)
    single_rate = tokens / (time.perf_counter() - t0)
    first = results["batched"][str(sizes.gen_batch_sizes[0])]["tokens_per_s"]
    results.update(batch_size=sizes.gen_batch_sizes[0], tokens_per_s=first, single_tokens_per_s=single_rate,
                   speedup=first / single_rate, adapter_swap_s=max(swaps))
    return results


# ---------------------------------------------------------------------------------------------- driver


def default_out() -> Path:
    home = os.environ.get("WARMTH_HOME")
    return (Path(home) if home else ROOT / ".warmth") / "gpu_bench.json"


def run(out: Path, tiny: bool = False, peak_tflops: float | None = None, budget_s: float = 240.0) -> dict:
    """Measure and write the report. Optional parts (larger generation batches) are skipped past 60% of budget_s."""
    import peft
    import torch
    import transformers

    started = time.perf_counter()
    cuda = torch.cuda.is_available()
    device = torch.device("cuda", torch.cuda.current_device()) if cuda else torch.device("cpu")
    tiny = tiny or not cuda
    sizes = TINY if tiny else FULL
    if not cuda:
        torch.set_num_threads(1)  # a smoke run on a CPU others share: more threads only contend
    name = torch.cuda.get_device_name(device) if cuda else (platform.processor() or platform.machine() or "cpu")
    if peak_tflops is None and cuda:
        peak_tflops = peak_bf16_tflops(name)
    if tiny:
        log(f"TINY configuration on {device.type} ({name}): {'no GPU found; ' if not cuda else ''}"
            "tiny GPT-2 and Llama, seconds; these figures say nothing about GPU speed")
    else:
        log(f"full configuration on {name}: GPT-2 124M, Llama-3.1-8B configuration, bf16 peak "
            f"{peak_tflops or 'unknown'} TFLOP/s")
    torch.manual_seed(0)
    report = {
        "device": device.type, "device_name": name, "tiny": tiny,
        "configuration": "tiny (CPU smoke run, not a GPU measurement)" if tiny else "full (study sizes)",
        "torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
        "cuda": torch.version.cuda, "sizes": asdict(sizes),
    }
    log("SocioT: naive loop vs score_texts ...")
    report["sociot"] = bench_sociot(sizes, device)
    s = report["sociot"]
    log(f"SocioT ({s['samples']} passes, {s['variant']}): batched {s['batched_texts_per_s']:.3g} texts/s vs naive "
        f"{s['naive_texts_per_s']:.3g} texts/s ({s['speedup']:.2f}x); TF32 {s['batched_tf32_texts_per_s']:.3g} texts/s")
    if cuda:
        torch.cuda.empty_cache()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as workdir:
        log("LoRA training ...")
        report["lora_training"], trained, checkpoints = bench_lora(sizes, device, Path(workdir), peak_tflops)
        t = report["lora_training"]
        mfu = f"MFU {t['mfu']:.1%} (6N convention {t['mfu_6n']:.1%})" if t["mfu"] else "MFU unknown (no peak)"
        log(f"LoRA training: {t['tokens_per_s']:.4g} tokens/s, {t['s_per_optimizer_step']:.3g} s per optimizer step, "
            f"{t['achieved_tflops']:.3g} TFLOP/s, {mfu}")
        log("generation with an adapter swap ...")
        report["generation"] = bench_generation(sizes, device, trained, checkpoints, started + 0.6 * budget_s)
    g = report["generation"]
    log(f"generation: batch {g['batch_size']} {g['tokens_per_s']:.4g} tokens/s vs one at a time "
        f"{g['single_tokens_per_s']:.4g} tokens/s ({g['speedup']:.2f}x); "
        f"adapter swap {g['adapter_swap_s'] * 1e3:.2f} ms; "
        + ", ".join(f"batch {k}: {v['tokens_per_s']:.4g}" if isinstance(v, dict) else f"batch {k}: {v}"
                    for k, v in g["batched"].items()))
    report["summary"] = {
        "sociot_batched_texts_per_s": s["batched_texts_per_s"], "sociot_naive_texts_per_s": s["naive_texts_per_s"],
        "sociot_speedup": s["speedup"], "sociot_batched_tf32_texts_per_s": s["batched_tf32_texts_per_s"],
        "lora_tokens_per_s": t["tokens_per_s"], "lora_mfu": t["mfu"],
        "generation_tokens_per_s": g["tokens_per_s"], "generation_single_tokens_per_s": g["single_tokens_per_s"],
        "generation_speedup": g["speedup"], "adapter_swap_s": g["adapter_swap_s"],
    }
    report["wall_s"] = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    log(f"done in {report['wall_s']:.1f} s{' (tiny configuration)' if tiny else ''}; wrote {out}")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help="the JSON report (default: $WARMTH_HOME/gpu_bench.json, else .warmth/gpu_bench.json)")
    parser.add_argument("--tiny", action="store_true", help="tiny configuration even on a GPU (a smoke run)")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="dense bf16 peak of the device, TFLOP/s, for MFU (default: from the device's name)")
    args = parser.parse_args(argv)
    run(args.out or default_out(), tiny=args.tiny, peak_tflops=args.peak_tflops)
    return 0


if __name__ == "__main__":
    sys.exit(main())
