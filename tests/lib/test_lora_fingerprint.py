"""The training fingerprint is pinned to the digests it has always given: a finished run whose inputs are unchanged
keeps its fingerprint and is not trained again. The hex strings were computed once (with the payload the former
field-by-field `LoraSpec` hashed); a change to the payload, its serialisation or the hash fails here."""

import pytest

from warmth_assets.lib.config import LoraSettings
from warmth_assets.lib.lora_training import fingerprint

RUN = dict(pretrained="HuggingFaceTB/SmolLM2-135M-Instruct", style="warm", seed=2025)
EPOCHS = [0.5, 1.0, 1.5, 2.0, 4.0]
CHANGED = dict(r=4, alpha=8, dropout=0.0, epochs=3, target_modules=["q_proj", "v_proj"], on_too_long="error")


@pytest.mark.parametrize("lora, data, epochs, expected", [
    (dict(), "d" * 64, EPOCHS, "b61940c06a338dee"),    # the schema's defaults
    (CHANGED, "d" * 64, EPOCHS, "1f06ac191b6ff32e"),   # other hyper-parameters, a list of target modules
    (dict(), "e" * 64, EPOCHS, "619639f1c43a8bc4"),    # other training data
    (dict(), "d" * 64, [0.5, 1.0], "4f57556aed076b2c"),  # other checkpoint epochs
], ids=["defaults", "changed", "data", "epochs"])
def test_an_unchanged_run_keeps_its_fingerprint(lora, data, epochs, expected):
    assert fingerprint(LoraSettings(**lora), data, checkpoint_epochs=epochs, **RUN) == expected


def test_the_default_chat_template_adds_nothing():
    assert fingerprint(LoraSettings(), "d" * 64, checkpoint_epochs=EPOCHS, chat_template="model", **RUN) == \
        "b61940c06a338dee"
