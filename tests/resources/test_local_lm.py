"""[[models]] chat_template: "model" keeps the tokenizer's own template (and every key cached so far); a Jinja
file replaces it for generation, choice scoring, training and serving, and enters the keys."""

import pytest

from resources.local_lm import LocalLMResource
from warmth_assets.lib import lora_training, vllm_server
from warmth_assets.lib.config import LoraSettings
from warmth_assets.lib.llm_requests import ChatRequest, GenerateConfig

PLAIN = ("{% for m in messages %}{{ m['role'] }} {{ m['content'] }} {% endfor %}"
         "{% if add_generation_prompt %}assistant {% endif %}")
MESSAGES = [{"role": "user", "content": "hello friend"}]


def test_a_chat_template_file_replaces_the_tokenizers_and_enters_the_keys(tmp_path, tiny_chat_model):
    template = tmp_path / "plain.jinja"
    template.write_text(PLAIN)
    default = LocalLMResource(source_kind="local", source=str(tiny_chat_model))
    custom = LocalLMResource(source_kind="local", source=str(tiny_chat_model), chat_template=str(template))
    assert default.identity == f"local:{tiny_chat_model}"  # as before the setting was read: old keys stay valid
    assert custom.identity.startswith(default.identity + "#template=") and custom.identity != default.identity

    _, default_tokenizer, _ = default._model()
    _, custom_tokenizer, _ = custom._model()
    assert custom_tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) == \
        "user hello friend assistant "
    assert default_tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=True) \
        .startswith("<|im_start|>user")  # the tokenizer's own, untouched by the other load

    request = ChatRequest.build(MESSAGES, model="tiny",
                                config=GenerateConfig(temperature=0.0, max_tokens=4), template_version="t")
    assert request.key("local", f"local:{default.identity}") != request.key("local", f"local:{custom.identity}")
    [answer] = custom.generate([request])
    assert answer.completion_tokens > 0


def test_a_missing_chat_template_file_is_a_clear_error(tiny_chat_model):
    broken = LocalLMResource(source_kind="local", source=str(tiny_chat_model), chat_template="/no/such.jinja")
    with pytest.raises(FileNotFoundError, match=r"chat_template '/no/such.jinja': no such file; give \"model\""):
        broken.identity


def test_training_fingerprint_and_serving_follow_the_template(tmp_path):
    lora = LoraSettings(epochs=2.0, r=8, alpha=16, dropout=0.1, learning_rate=1e-5, max_length=1024,
                        effective_batch_size=16, per_device_batch_size=2)
    run = dict(pretrained="m", style="warm", checkpoint_epochs=(1.0, 2.0), seed=2025)
    # Pinned: the fingerprint of this run when its settings were copied into a LoraSpec, and before
    # chat_template was a field (finished runs stay finished).
    assert lora_training.fingerprint(lora, "abc", **run) == "fbdfda1653cc4598"
    template = tmp_path / "plain.jinja"
    template.write_text(PLAIN)
    custom = lora_training.fingerprint(lora, "abc", **run, chat_template=str(template))
    template.write_text(PLAIN + " ")
    edited = lora_training.fingerprint(lora, "abc", **run, chat_template=str(template))
    assert len({"fbdfda1653cc4598", custom, edited}) == 3  # the file's text, not its name, counts

    argv = vllm_server.serve_spec("tiny", "/weights", [], chat_template=str(template)).argv()
    assert argv[argv.index("--chat-template") + 1] == str(template.resolve())
    assert "--chat-template" not in vllm_server.serve_spec("tiny", "/weights", []).argv()


def test_socio_t_scorer_and_chat_model_share_one_cache_in_separate_entries(tiny_chat_model, monkeypatch):
    """One per-process cache loads both; the scorer is its own object, since SocioT puts it in train mode
    (dropout) and a chat model must stay in eval."""
    from resources import local_lm
    from tests.study_configs import study_settings
    from warmth_assets.assets.warmth import scoring_lm

    monkeypatch.setattr(local_lm, "_LOADED", {})
    chat, _ = local_lm.load_model("local", str(tiny_chat_model), "cpu")
    scorer, tokenizer = scoring_lm(str(tiny_chat_model), study_settings())  # not a slug: a folder, as it is
    assert scorer is not chat and len(local_lm._LOADED) == 2
    assert scoring_lm(str(tiny_chat_model), study_settings())[0] is scorer and len(local_lm._LOADED) == 2
    scorer.train()
    assert not chat.training and tokenizer.padding_side == "right"  # the scorer's tokenizer as saved


def _kernel_reports_amx_bf16() -> bool:
    """The kernel's own CPU flags, independent of torch's feature check."""
    from pathlib import Path

    cpuinfo = Path("/proc/cpuinfo")
    return cpuinfo.exists() and any(line.startswith("flags") and " amx_bf16" in line
                                    for line in cpuinfo.read_text().splitlines())


def test_precision_auto_is_bfloat16_where_the_cpu_has_amx_and_a_setting_overrides_it(tiny_chat_model, monkeypatch):
    """[generation] dtype: "auto" loads bfloat16 on CUDA and on CPUs with bf16 matrix units (as the kernel reports
    them), float32 elsewhere; an explicit dtype wins; each precision is its own cached model; the answers stay
    keyed as before (precision, like the device, is not part of a key) and runs name the precision used."""
    import torch

    from resources import local_lm
    from resources.pretrained import resolve_dtype

    monkeypatch.setattr(local_lm, "_LOADED", {})
    expected = "bfloat16" if _kernel_reports_amx_bf16() else "float32"
    assert resolve_dtype("auto", "cpu") == expected and resolve_dtype("auto", "cuda") == "bfloat16"
    assert resolve_dtype("float32", "cuda") == "float32"

    auto = LocalLMResource(source_kind="local", source=str(tiny_chat_model), device="cpu")
    pinned = LocalLMResource(source_kind="local", source=str(tiny_chat_model), device="cpu", dtype="float32")
    assert auto.precision == expected and pinned.precision == "float32"
    assert auto.identity == pinned.identity  # the same keys whatever the precision
    assert pinned._model()[0].dtype == torch.float32
    assert auto._model()[0].dtype == getattr(torch, expected)
    assert len(local_lm._LOADED) == (2 if expected != "float32" else 1)
    request = ChatRequest.build(MESSAGES, model="tiny", config=GenerateConfig(temperature=0.0, max_tokens=4),
                                template_version="t")
    assert all(r.completion_tokens > 0 for r in auto.generate([request]) + pinned.generate([request]))
