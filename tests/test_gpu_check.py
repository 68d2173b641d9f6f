"""bench/gpu.py (`make gpu-check`): without a GPU it runs a tiny configuration, says so, and reports
positive, finite figures; it needs nothing but torch, transformers and peft; `make bench` skips it."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# bench/gpu.py as the script it is (not through the bench package, and without putting bench/ on sys.path).
_spec = importlib.util.spec_from_file_location("bench_gpu_check", REPO / "bench" / "gpu.py")
gpu = sys.modules.setdefault(_spec.name, importlib.util.module_from_spec(_spec))
_spec.loader.exec_module(gpu)

# What a bare GPU machine lacks: importing any of these in the check fails the subprocess.
ABSENT_ON_A_GPU_BOX = ("dagster", "pandas", "duckdb", "scipy", "sklearn", "statsmodels", "pyarrow", "resources")

SUMMARY_KEYS = {
    "sociot_batched_texts_per_s", "sociot_naive_texts_per_s", "sociot_speedup", "sociot_batched_tf32_texts_per_s",
    "lora_tokens_per_s", "lora_mfu", "generation_tokens_per_s", "generation_single_tokens_per_s",
    "generation_speedup", "adapter_swap_s",
}


def _positive_finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


@pytest.mark.slow
def test_tiny_run_without_a_gpu(tmp_path):
    out = tmp_path / "gpu_bench.json"
    code = (
        "import sys, runpy\n"
        f"sys.modules.update(dict.fromkeys({ABSENT_ON_A_GPU_BOX!r}))\n"  # None: `import x` raises ImportError
        f"sys.argv = ['bench/gpu.py', '--out', {str(out)!r}]\n"
        "try:\n"
        "    runpy.run_path('bench/gpu.py', run_name='__main__')\n"
        "except SystemExit as stop:\n"
        "    assert not stop.code, stop.code\n"
        "project = sorted(m for m in sys.modules if m.startswith(('warmth_assets', 'bench')))\n"
        "assert project == ['warmth_assets', 'warmth_assets.lib', 'warmth_assets.lib.sociot'], project\n"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "TINY configuration" in done.stdout and "no GPU found" in done.stdout
    assert "(tiny configuration)" in done.stdout

    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["tiny"] is True
    assert {"sociot", "lora_training", "generation", "summary", "torch", "transformers", "peft"} <= set(report)
    summary = report["summary"]
    assert set(summary) == SUMMARY_KEYS
    assert summary["lora_mfu"] is None  # no bf16 peak for a CPU: MFU is not made up
    for key, value in summary.items():
        if key != "lora_mfu":
            assert _positive_finite(value), (key, value)

    sociot, lora, generation = report["sociot"], report["lora_training"], report["generation"]
    for key in ("naive_texts_per_s", "batched_texts_per_s", "batched_tf32_texts_per_s", "speedup",
                "sequence_tokens_mean"):
        assert _positive_finite(sociot[key]), key
    assert sociot["variant"] == "reference" and sociot["warmth_finite"] is True
    for key in ("tokens_per_s", "s_per_optimizer_step", "achieved_tflops", "flops_per_token", "loss_last"):
        assert _positive_finite(lora[key]), key
    assert (lora["r"], lora["alpha"], lora["dropout"]) == (8, 16, 0.1)  # the study's LoRA, tiny or not
    assert lora["gradient_accumulation"] * lora["micro_batch"] == lora["effective_batch"]
    assert lora["optimizer_steps"] >= 2
    for size, measured in generation["batched"].items():
        assert _positive_finite(measured["tokens_per_s"]) and measured["tokens"] > 0, size
    assert _positive_finite(generation["adapter_load_s"])


def test_full_configuration_is_the_studys():
    assert gpu.FULL.gpt2 == dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
    assert gpu.FULL.sociot_samples == 100 and gpu.SOCIOT_VARIANT == "reference" and gpu.SOCIOT_BATCH_SIZE == 64
    llama = gpu.FULL.llama
    assert (llama["hidden_size"], llama["intermediate_size"], llama["num_hidden_layers"], llama["num_attention_heads"],
            llama["num_key_value_heads"], llama["vocab_size"]) == (4096, 14336, 32, 32, 8, 128256)
    assert llama["rope_parameters"]["rope_theta"] == 500000.0 and llama["rms_norm_eps"] == 1e-5
    assert (gpu.FULL.seq_len, gpu.FULL.effective_batch, gpu.FULL.micro_batch) == (1024, 16, 1)
    assert (gpu.LORA_R, gpu.LORA_ALPHA, gpu.LORA_DROPOUT, gpu.LEARNING_RATE) == (8, 16, 0.1, 1e-5)
    assert gpu.FULL.gen_batch_sizes[0] == 16 and gpu.TEMPERATURE == 0.8


def test_flop_counts_and_peaks():
    # Llama-3.1-8B: 7,504,658,432 linear weights (lm_head included), 20,971,520 LoRA weights at r 8 on all linears.
    n, n_lora = 7_504_658_432, 20_971_520
    lora = gpu.lora_flops_per_token(n, n_lora, 32, 4096, 1024)
    assert lora == 4 * n + 6 * n_lora + 12 * 32 * 4096 * 1024
    assert gpu.full_flops_per_token(n, 32, 4096, 1024) == 6 * n + 12 * 32 * 4096 * 1024
    assert gpu.peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.4
    assert gpu.peak_bf16_tflops("NVIDIA H200") == 989.4
    assert gpu.peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert gpu.peak_bf16_tflops("NVIDIA H200 NVL") == 835.0
    assert gpu.peak_bf16_tflops("Some Future GPU") is None


def test_stand_in_tokenizer_counts_words_and_punctuation():
    tokenizer = gpu.StandInGPT2Tokenizer(50257)
    ids = tokenizer('My friend said, "I\'m here."')["input_ids"]
    assert len(ids) == len(["My", " friend", " said", ",", ' "', "I", "'m", " here", '."'])
    assert all(0 <= i < 50257 for i in ids)
    assert len(tokenizer("word " * 2000, max_length=1024, truncation=True)["input_ids"]) == 1024


def test_make_bench_does_not_run_the_gpu_check():
    import bench.__main__ as bench_main

    assert "gpu" in bench_main.NOT_RUN
