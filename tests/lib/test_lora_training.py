"""LoRA training of a tiny model made in the test: schedule, saved adapters, reload, resume, no-op re-run."""

import pytest
import torch
from peft import PeftModel, get_peft_model_state_dict
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from warmth_assets.lib.config import LoraSettings
from warmth_assets.lib.lora_training import train_lora as _train_lora

CONVERSATIONS = [
    [{"role": "user", "content": f"what is two plus {i}"}, {"role": "assistant", "content": f"answer is {i + 2} my dear friend"}]
    for i in range(12)
]


def spec(model_dir, **kw) -> dict:
    """The run's inputs: [finetune.lora] settings and the per-run arguments, overridable one by one."""
    run = dict(pretrained=str(model_dir), style="warm", checkpoint_epochs=(0.5, 1, 2), seed=7)
    lora = dict(epochs=2, r=4, alpha=8, dropout=0.0, learning_rate=5e-3, max_length=64, effective_batch_size=4,
                per_device_batch_size=2)
    for name, value in kw.items():
        (run if name in run else lora)[name] = value
    return {"lora": LoraSettings(**lora), **run}


def train_lora(spec: dict, conversations, run_dir, data_sha256, device, log=print):
    spec = dict(spec)
    return _train_lora(spec.pop("lora"), conversations, run_dir, data_sha256, device, log=log, **spec)


def test_adapters_at_every_checkpoint_epoch_reload_identically(tiny_chat_model, tmp_path):
    report = train_lora(spec(tiny_chat_model), CONVERSATIONS, tmp_path / "run", "data-v1", "cpu", log=lambda m: None)
    assert report.steps_per_epoch == 3 and report.steps == 6
    assert sorted(report.adapters) == ["warm-e0.5", "warm-e1", "warm-e2"]
    assert [s for s, _ in report.losses] == [1, 2, 3, 4, 5, 6]
    assert report.losses[-1][1] < report.losses[0][1]  # it learns
    assert report.tokens_seen > 0 and report.trained_tokens > 0

    saved = load_file(f"{report.adapters['warm-e2']}/adapter_model.safetensors")
    base = AutoModelForCausalLM.from_pretrained(tiny_chat_model)
    reloaded = get_peft_model_state_dict(PeftModel.from_pretrained(base, report.adapters["warm-e2"]))
    assert saved.keys() == reloaded.keys() and all(torch.equal(saved[k], reloaded[k]) for k in saved)
    early = load_file(f"{report.adapters['warm-e0.5']}/adapter_model.safetensors")
    assert any(not torch.equal(early[k], saved[k]) for k in saved)  # different checkpoints, different weights


def test_finished_run_is_not_trained_again_unless_inputs_change(tiny_chat_model, tmp_path):
    first = train_lora(spec(tiny_chat_model), CONVERSATIONS, tmp_path / "run", "data-v1", "cpu", log=lambda m: None)
    again = train_lora(spec(tiny_chat_model), CONVERSATIONS, tmp_path / "run", "data-v1", "cpu", log=lambda m: None)
    assert again.skipped and again.fingerprint == first.fingerprint and again.adapters == first.adapters
    changed = train_lora(spec(tiny_chat_model), CONVERSATIONS[:8], tmp_path / "run", "data-v2", "cpu", log=lambda m: None)
    assert not changed.skipped and changed.fingerprint != first.fingerprint and changed.steps == 4


def test_interrupted_run_resumes_from_the_last_checkpoint(tiny_chat_model, tmp_path):
    class Crash(Exception):
        pass

    def crash_at_step_3(message: str):
        if message.startswith("step 3:"):
            raise Crash(message)

    with pytest.raises(Crash):
        train_lora(spec(tiny_chat_model), CONVERSATIONS, tmp_path / "run", "data-v1", "cpu", log=crash_at_step_3)
    early = (tmp_path / "run" / "adapters" / "warm-e0.5" / "adapter_model.safetensors").read_bytes()
    report = train_lora(spec(tiny_chat_model), CONVERSATIONS, tmp_path / "run", "data-v1", "cpu", log=lambda m: None)
    assert report.resumed_from.endswith("checkpoint-2")
    assert report.steps == 6 and sorted(report.adapters) == ["warm-e0.5", "warm-e1", "warm-e2"]
    assert [s for s, _ in report.losses][-1] == 6
    assert (tmp_path / "run" / "adapters" / "warm-e0.5" / "adapter_model.safetensors").read_bytes() == early


def test_empty_data_is_a_clear_error(tiny_chat_model, tmp_path):
    with pytest.raises(ValueError, match="SFT data set is empty"):
        train_lora(spec(tiny_chat_model), [], tmp_path / "run", "x", "cpu")


def test_too_long_conversations_are_counted_or_refused(tiny_chat_model, tmp_path):
    from warmth_assets.lib.sft_tokenize import SequenceTooLongError

    report = train_lora(spec(tiny_chat_model, max_length=12), CONVERSATIONS, tmp_path / "a", "d", "cpu", log=lambda m: None)
    assert report.truncated == 12
    with pytest.raises(SequenceTooLongError, match="exceeds max_length 12: raise"):
        train_lora(spec(tiny_chat_model, max_length=12, on_too_long="error"), CONVERSATIONS, tmp_path / "b", "d", "cpu")


@pytest.mark.parametrize("mode", ["merged", "peft"])
def test_checkpoints_of_one_run_answer_differently_and_swap_cleanly_on_one_base(tiny_chat_model, tmp_path, monkeypatch,
                                                                                 mode):
    """A no-op adapter (nothing learnt, nothing saved, or never switched on) makes every checkpoint answer
    like the base model; one that is not swapped cleanly makes an answer depend on what ran before it. Both ways
    of applying an adapter ([generation] adapters): merged into a copy of the base, or peft's layers on the base."""
    from resources import local_lm
    from resources.local_lm import LocalLMResource
    from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig

    monkeypatch.setattr(local_lm, "_LOADED", {})  # a base of our own, not one another test swapped adapters on
    monkeypatch.setattr(local_lm, "_PEFT", {})
    monkeypatch.setattr(local_lm, "_MERGED", {})
    report = train_lora(spec(tiny_chat_model, checkpoint_epochs=(0.5, 2), learning_rate=0.05), CONVERSATIONS,
                        tmp_path / "run", "data-v1", "cpu", log=lambda m: None)
    requests = [ChatRequest.build([{"role": "user", "content": text}], model="tiny",
                                  config=GenerateConfig(temperature=0.0, max_tokens=8))
                for text in ("what is two plus 3", "hello friend how are you", "the capital of france")]

    def answers(adapter: str = "") -> list[str]:
        resource = LocalLMResource(source_kind="local", source=str(tiny_chat_model), adapter_path=adapter,
                                   adapters=mode)
        return [r.text for r in resource.generate(requests)]

    base = answers()
    first = answers(report.adapters["warm-e0.5"])   # A
    last = answers(report.adapters["warm-e2"])      # B, on the same loaded base
    first_again = answers(report.adapters["warm-e0.5"])  # A again
    assert len(local_lm._LOADED) == 1  # one base, loaded once
    if mode == "peft":  # both adapters on that one base
        assert not local_lm._MERGED and len(local_lm._PEFT[next(iter(local_lm._PEFT))].peft_config) == 2
    else:  # one merged copy at a time, the base never wrapped
        assert not local_lm._PEFT and len(local_lm._MERGED) == 1
    assert first != base and last != base  # the adapters change the model's greedy answers
    assert sum(a != b for a, b in zip(first, last)) >= 2  # and the later checkpoint answers differently
    assert first_again == first  # switching A -> B -> A leaves nothing of B behind
    assert answers() == base  # nor does the base model keep anything of either
