"""bench/gpu.py's shared part: the study's settings, the full and tiny sizes, FLOP counts, device peaks and
random-weight models built on the device. Imported as the top-level `_gpu_common` (see gpu.py's loader)."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
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
