"""What `from_pretrained` takes for a model source, and the device to load it on.

A GGUF file is de-quantised once (about 40 s on 2 cores for SmolLM2-135M) and cached with
`save_pretrained` under a folder named by the file's sha256, so every later load takes a second; processes
converting the same file wait for the first (a lock beside the folder).
"""

from __future__ import annotations

import os
from pathlib import Path

from resources.warehouse import exclusive_lock
from warmth_assets.lib import paths
from warmth_assets.lib.hashing import file_sha256
from warmth_assets.lib.model_sources import resolve_model_file


def model_cache_dir() -> Path:
    """Converted models, shared by every WARMTH_HOME on the machine (keyed by content hash)."""
    return Path(os.environ.get("WARMTH_MODEL_CACHE") or paths.artifacts_dir() / "models")


def convert_gguf(gguf: Path) -> Path:
    """A `save_pretrained` folder for a GGUF file, converted once and reused."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = model_cache_dir() / f"{gguf.stem}-{file_sha256(gguf)[:16]}"
    if (target / "config.json").exists():
        return target
    with exclusive_lock(target.with_name(target.name + ".lock"), timeout_s=1800):
        if (target / "config.json").exists():  # another process converted it while we waited
            return target
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # transformers keeps a GGUF model marked as quantized (not serialisable) although its weights
        # are de-quantised floats by now; unmark it to save it as a plain checkpoint.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        partial = target.with_name(target.name + ".partial")
        model.save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        os.replace(partial, target)
    return target


def resolve_pretrained(source_kind: str, source: str) -> str:
    """What `from_pretrained` takes for a model source."""
    if source_kind == "gguf":
        return str(convert_gguf(resolve_model_file(source)))
    if source_kind == "local":
        return str(resolve_model_file(source))
    if source_kind == "hf":
        return source
    raise ValueError(f"model source kind {source_kind!r} cannot run in-process (use hf, local or gguf)")


def cpu_has_bf16_matrix_units() -> bool:
    """Whether this CPU multiplies bfloat16 matrices natively (Intel AMX tiles): there a bf16 prompt pass is
    about 3.5x faster than float32 (SmolLM2-135M, 16 x 418 tokens, 2 cores); elsewhere bf16 is emulated, slower."""
    import torch

    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)  # torch's own CPU feature check (2.x)
    return bool(probe and probe())


def resolve_dtype(dtype: str, device: str) -> str:
    """The torch dtype name to load an in-process model in: `dtype` as given, or for "auto" bfloat16 on CUDA
    and on CPUs with bf16 matrix units, else float32."""
    if dtype != "auto":
        return dtype
    if device.startswith("cuda") or (device == "cpu" and cpu_has_bf16_matrix_units()):
        return "bfloat16"
    return "float32"


def best_device(device: str = "auto") -> str:
    """The device to load on: `device` as given, or for "auto" cuda when available, else cpu."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
