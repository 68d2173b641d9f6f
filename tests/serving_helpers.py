"""For the serving tests and benchmarks: a free loopback port, and a LoRA adapter that changes answers."""

from __future__ import annotations

import socket
from pathlib import Path


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def random_lora_adapter(pretrained: str, folder: str | Path, seed: int, std: float = 0.02, r: int = 8,
                        alpha: int = 16) -> Path:
    """An all-linear LoRA adapter like the study's (lib/lora_training.py) built in seconds, its B matrices drawn at
    random (std 0.02) instead of zeros, so that it changes most greedy answers of SmolLM2-135M while keeping them
    fluent (a freshly initialised adapter changes nothing)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    folder = Path(folder)
    if (folder / "adapter_config.json").exists():
        return folder
    model = AutoModelForCausalLM.from_pretrained(pretrained, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, lora_dropout=0.0, target_modules="all-linear",
                                             task_type="CAUSAL_LM"))
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora_B" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
    model.save_pretrained(folder)
    return folder
