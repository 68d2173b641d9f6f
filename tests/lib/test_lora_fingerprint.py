"""The training fingerprint hashes what the former field-by-field copy of the settings (LoraSpec) hashed, so a
run finished before train_lora took LoraSettings is not trained again."""

import hashlib
import json

import pytest

from warmth_assets.lib.config import LoraSettings, load_settings
from warmth_assets.lib.lora_training import fingerprint
from warmth_assets.lib.paths import repo_root


def former_fingerprint(lora: LoraSettings, data_sha256: str, pretrained: str, style: str, epochs: list[float],
                       seed: int) -> str:
    """assets/finetune.py's LoraSpec(...) and lib/lora_training.fingerprint as they were (default template)."""
    spec = dict(pretrained=pretrained, style=style, checkpoint_epochs=tuple(epochs), epochs=lora.epochs, r=lora.r,
                alpha=lora.alpha, dropout=lora.dropout, learning_rate=lora.learning_rate, max_length=lora.max_length,
                effective_batch_size=lora.effective_batch_size, per_device_batch_size=lora.per_device_batch_size,
                seed=seed, on_too_long=lora.on_too_long,
                target_modules=lora.target_modules if isinstance(lora.target_modules, str)
                else tuple(lora.target_modules))
    payload = json.dumps({"spec": spec, "data": data_sha256}, sort_keys=True, default=list)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


CASES = {
    "defaults": lambda: LoraSettings(),
    "changed": lambda: LoraSettings(r=4, alpha=8, dropout=0.0, epochs=3, target_modules=["q_proj", "v_proj"],
                                    on_too_long="error"),
    "study": lambda: load_settings(repo_root() / "dagster_project.toml").finetune.lora,
    "demo": lambda: load_settings(repo_root() / "demo.toml").finetune.lora,
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_unchanged_run_keeps_its_fingerprint(case):
    lora = CASES[case]()
    run = dict(pretrained="HuggingFaceTB/SmolLM2-135M-Instruct", style="warm", seed=2025)
    epochs = [0.5, 1.0, 1.5, 2.0, 4.0]
    assert fingerprint(lora, "d" * 64, checkpoint_epochs=epochs, **run) == \
        former_fingerprint(lora, "d" * 64, epochs=epochs, **run)
