"""GPU check: SocioT scoring, LoRA training and batched generation at the study's sizes, random weights.

    python bench/gpu.py [--out PATH] [--tiny] [--peak-tflops T]     (make gpu-check: the same with .venv)

Needs only torch, transformers and peft (and the standard library): no hub, no data, nothing else of
this project but `warmth_assets/lib/sociot.py` (pure Python, torch imported lazily), so it runs on a bare
GPU machine with a copy of this repository. Models have the real architectures and random weights,
built directly on the device (torch's and transformers' initialisers are skipped, the weights are
then drawn on the device itself, so no 8B model ever exists on the CPU):

- SocioT: GPT-2 124M (the study's scorer: 12 layers, width 768, vocabulary 50257, dropout 0.1), fp32
  as the pipeline loads it, the reference variant with 100 dropout passes: `score_texts` (batched,
  the `[sociot] batch_size` of 64 sequences per forward pass) against `naive_score_texts`
  (tests/sociot_naive.py, the released per-text loop: 200 forward passes of batch 4 per text), in texts per
  second. Also `score_texts` with TF32 matmuls allowed (the pipeline leaves them off). GPT-2's BPE files come
  from the hub, so the tokenizer is a stand-in: GPT-2's pre-tokenisation pattern, one id per piece (about GPT-2's token
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

The parts are sibling modules, bench/_gpu_common.py (settings, sizes, FLOP counts, model building),
bench/_gpu_sociot.py and bench/_gpu_llama.py (LoRA training and generation); this file is the driver.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _load_sibling(name: str) -> None:
    """bench/<name>.py as the top-level module <name>, the way `python bench/gpu.py` finds it (bench/ is then
    sys.path[0]). runpy.run_path and loading this file by path leave bench/ off sys.path, and `bench.<name>`
    would import the bench package, which a bare GPU machine need not be able to import; adding bench/ to
    sys.path would make every benchmark there a top-level name for whoever loaded this file."""
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # before running it: dataclasses look their module up there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


for _sibling in ("_gpu_common", "_gpu_sociot", "_gpu_llama"):  # each imports only the ones before it
    _load_sibling(_sibling)

# The entry point holds the study's settings and the FLOP and peak helpers too: the tests read them as gpu.<name>.
from _gpu_common import (  # noqa: E402
    FULL, LEARNING_RATE, LORA_ALPHA, LORA_DROPOUT, LORA_R, ROOT, SOCIOT_BATCH_SIZE, SOCIOT_VARIANT, TEMPERATURE,
    TINY, full_flops_per_token, log, lora_flops_per_token, peak_bf16_tflops,
)
from _gpu_llama import bench_generation, bench_lora  # noqa: E402
from _gpu_sociot import StandInGPT2Tokenizer, bench_sociot  # noqa: E402

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
