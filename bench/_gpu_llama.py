"""bench/gpu.py's Llama part: LoRA training on the Llama-3.1-8B configuration, then generation with the
trained adapter's two checkpoints swapped in, as the pipeline loads them."""

from __future__ import annotations

import gc
import math
import random
import time
from pathlib import Path

from _gpu_common import (
    LEARNING_RATE, LORA_ALPHA, LORA_DROPOUT, LORA_R, MAX_GRAD_NORM, TEMPERATURE, Sizes, build_random,
    full_flops_per_token, linear_weights, log, lora_flops_per_token, sync,
)


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
    model = PeftModel.from_pretrained(base, str(checkpoints[0]), adapter_name="ckpt1")  # as resources.local_lm
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
