"""In-process chat models (transformers): an HF id, a local folder or a GGUF file, on the best device.

What `from_pretrained` loads (GGUF files converted once) is resources/pretrained.py. Loaded models are kept
per process, chat models and scoring LMs (SocioT) in one cache: one load serves every call of a run.
Verdict requests are answered by choice scoring (resources/choice_scoring.py), not by generation.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Mapping

import dagster as dg
from pydantic import Field

from resources import choice_scoring
from resources.pretrained import best_device, resolve_dtype, resolve_pretrained
from resources.shared_prefix import generation_inputs
from warmth_assets.lib.config import GenerationSettings, ModelSettings, setting, shared_values
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, verdict_labels
from warmth_assets.lib.model_sources import MODEL_TEMPLATE, chat_template_sha256, chat_template_text

_LOADED: dict[tuple, tuple] = {}
_PEFT: dict[tuple, object] = {}  # base key -> PeftModel holding every adapter loaded so far ([generation] adapters = peft)
_MERGED: dict[tuple, object] = {}  # (base key, adapter) -> a copy of the base with the adapter merged in; one at a time
_LOAD_LOCK = threading.Lock()


def load_model(source_kind: str, source: str, device: str = "auto", chat_template: str = MODEL_TEMPLATE,
               dtype: str = "auto"):
    """(model, tokenizer) for a source, loaded once per process and precision; `chat_template` other than "model"
    replaces the tokenizer's template with the file's ([[models]] chat_template); `dtype` as [generation] dtype."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = best_device(device)
    dtype = resolve_dtype(dtype, device)

    def load():
        pretrained = resolve_pretrained(source_kind, source)
        tokenizer = AutoTokenizer.from_pretrained(pretrained)
        template = chat_template_text(chat_template)
        if template is not None:
            tokenizer.chat_template = template
        if not tokenizer.chat_template:
            raise ValueError(
                f"model {source!r} has no chat template in its tokenizer; use an instruct/chat model "
                "or give the model a chat_template in its tokenizer_config"
            )
        tokenizer.padding_side = "left"  # decoder-only batched generation pads on the left
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        model = AutoModelForCausalLM.from_pretrained(pretrained, dtype=getattr(torch, dtype)).to(device)
        model.eval()
        return model, tokenizer

    return _cached((source_kind, source, device, chat_template, dtype), load)


def load_scoring_model(source_kind: str, source: str):
    """(model, tokenizer) of a scoring LM (SocioT's), from the same per-process cache as the chat models, as
    `from_pretrained` gives it: default dtype, tokenizer untouched, as the released scorer loads it. Its own
    entry even for a model that also chats: the scorer is put in train mode (dropout), a chat model stays in
    eval."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = best_device()

    def load():
        pretrained = resolve_pretrained(source_kind, source)
        return AutoModelForCausalLM.from_pretrained(pretrained).to(device), AutoTokenizer.from_pretrained(pretrained)

    return _cached(("scoring", source_kind, source, device), load)


def _cached(key: tuple, load):
    """One load per key and process; the lock makes concurrent first uses wait for that one load."""
    with _LOAD_LOCK:
        if key not in _LOADED:
            _LOADED[key] = load()
        return _LOADED[key]


def _adapted(base_key: tuple, model, adapter_path: str, adapter_name: str):
    """The base model with one peft adapter active; adapters are loaded once and swapped, never the base."""
    from peft import PeftModel

    peft_model = _PEFT.get(base_key)
    if peft_model is None:
        peft_model = PeftModel.from_pretrained(model, adapter_path, adapter_name=adapter_name)
        peft_model.eval()
        _PEFT[base_key] = peft_model
    elif adapter_name not in peft_model.peft_config:
        peft_model.load_adapter(adapter_path, adapter_name=adapter_name)
    if any(p.dtype != model.dtype for n, p in peft_model.named_parameters() if "lora_" in n):
        # peft loads adapter weights as saved (float32 after CPU training); beside a bfloat16 base every LoRA layer
        # then casts its input at each decoding step. The adapter in the base's precision, as vLLM serves it.
        peft_model.to(model.dtype)
    peft_model.set_adapter(adapter_name)
    return peft_model


def _merged(base_key: tuple, model, adapter_path: str, adapter_name: str):
    """A copy of the base model with one peft adapter merged into its weights (peft's `merge_and_unload`). The LoRA
    layers beside the base's cost as much again at every decoding step on CPU (Python and dispatch per small op), and
    a base wrapped by peft pays for the wrappers even with adapters off; merged, a checkpoint runs as fast as its base,
    and the base itself is never touched. One merged checkpoint is kept at a time: each is a copy of the base."""
    import copy

    from peft import PeftModel

    key = (*base_key, adapter_name)
    with _LOAD_LOCK:
        if key not in _MERGED:
            _MERGED.clear()
            # A base that peft's own mode wrapped in this process: its adapters taken out again, unmerged.
            clean = copy.deepcopy(_PEFT[base_key]).unload() if base_key in _PEFT else copy.deepcopy(model)
            _MERGED[key] = PeftModel.from_pretrained(clean, adapter_path, adapter_name=adapter_name
                                                     ).merge_and_unload().eval()
        return _MERGED[key]


class LocalLMResource(dg.ConfigurableResource):
    """Batched chat generation with a transformers model in this process, optionally through a LoRA adapter."""

    source_kind: str = Field(description="hf, local or gguf")
    source: str = Field(description="HF id, folder, GGUF path or package:<pkg>/<file>")
    device: str = Field("auto", description="auto: cuda when available, else cpu")
    # Declared by their settings, so that a resource built bare (tests, benchmarks) batches as [generation]'s
    # defaults say: one default to keep, not a second one here that could drift from it.
    batch_size: int = setting(GenerationSettings, "batch_size")
    batch_max_chars: int = setting(GenerationSettings, "batch_max_chars")
    adapter_path: str = Field("", description="peft adapter folder; empty: the base model itself")
    adapter_sha256: str = Field("", description="content hash of the adapter (part of every cache key)")
    chat_template: str = setting(ModelSettings, "chat_template")
    dtype: str = setting(GenerationSettings, "dtype")
    adapters: str = setting(GenerationSettings, "adapters")

    @classmethod
    def from_settings(cls, model: ModelSettings | Mapping, generation: GenerationSettings,
                      **overrides) -> "LocalLMResource":
        """One [[models]] entry (or its model_registry row) in process, batched as [generation] says;
        `overrides` set what neither holds (the device, a checkpoint's adapter)."""
        row = model if isinstance(model, Mapping) else model.model_dump()
        values = {"source_kind": row["source_kind"], "source": row["source"],
                  # A registry row written before [[models]] had chat_template holds none: the tokenizer's own.
                  "chat_template": row.get("chat_template") or MODEL_TEMPLATE,
                  **shared_values(generation, cls)}
        return cls(**{**values, **overrides})

    @property
    def identity(self) -> str:
        base = f"{self.source_kind}:{self.source}"
        if self.chat_template != MODEL_TEMPLATE:  # the default adds nothing: keys cached before stay valid
            base += f"#template={chat_template_sha256(self.chat_template)}"
        return f"{base}@{self.adapter_sha256 or self.adapter_path}" if self.adapter_path else base

    @property
    def precision(self) -> str:
        """The dtype this resource's model runs in here ([generation] dtype resolved on this machine)."""
        return resolve_dtype(self.dtype, best_device(self.device))

    def _model(self):
        """(model to generate with, tokenizer, factory of the context to generate in) for this checkpoint."""
        import contextlib

        device = best_device(self.device)
        model, tokenizer = load_model(self.source_kind, self.source, self.device, self.chat_template, self.dtype)
        base_key = (self.source_kind, self.source, device, self.chat_template, self.precision)
        if self.adapter_path:
            name = (self.adapter_sha256 or hashlib.sha256(self.adapter_path.encode()).hexdigest())[:16]
            if self.adapters == "merged":
                return _merged(base_key, model, self.adapter_path, name), tokenizer, contextlib.nullcontext
            return _adapted(base_key, model, self.adapter_path, name), tokenizer, contextlib.nullcontext
        if base_key in _PEFT:
            # Adapters were injected into the base's layers: switch them off for the base model.
            peft_model = _PEFT[base_key]
            return peft_model, tokenizer, peft_model.disable_adapter
        return model, tokenizer, contextlib.nullcontext

    def _batches(self, requests: list[ChatRequest], indices: list[int], settings=lambda r: (),
                 order=lambda r: ()) -> list[list[int]]:
        """`indices` cut into batches of equal `settings`, sorted by `order` and prompt length, within the
        size limits."""
        size = lambda i: sum(len(c) for _, c in requests[i].messages)  # noqa: E731
        ordered = sorted(indices, key=lambda i: (*order(requests[i]), size(i)))
        batches, current = [], []
        for i in ordered:
            over_budget = self.batch_max_chars and (len(current) + 1) * size(i) > self.batch_max_chars
            if current and (len(current) == self.batch_size or over_budget
                            or settings(requests[current[0]]) != settings(requests[i])):
                batches.append(current)
                current = []
            current.append(i)
        if current:
            batches.append(current)
        return batches

    def generate(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """Answers in request order. Requests are batched by generation settings and prompt length.

        Sampling is seeded per batch with the first request's seed, so an answer is reproducible
        for the same batch; the call cache, not re-generation, is what makes re-runs identical.
        A verdict request (response_format with a label enum) is answered by `score_choices`.
        """
        import torch

        results: list[ChatResult | None] = [None] * len(requests)
        free, choice = [], []
        for i, request in enumerate(requests):
            if not request.response_format:
                if request.calibration:
                    raise ValueError("a choice calibration needs a verdict response_format (labels to score)")
                free.append(i)
            elif verdict_labels(request.response_format_dict()):
                choice.append(i)
            else:
                raise ValueError(f"the in-process backend answers only verdict formats (a label enum), not "
                                 f"response_format {request.response_format}")
        if choice:
            for i, result in zip(choice, self.score_choices([requests[i] for i in choice])):
                results[i] = result
        if not free:
            return results  # type: ignore[return-value]
        model, tokenizer, adapter_context = self._model()
        for batch in self._batches(requests, free, _settings, lambda r: (r.temperature, r.max_tokens)):
            first = requests[batch[0]]
            sampling = first.temperature > 0
            started = time.monotonic()
            with torch.no_grad(), adapter_context():
                encoded = generation_inputs(model, tokenizer, [requests[i].message_dicts() for i in batch])
                if first.seed is not None:
                    torch.manual_seed(first.seed)
                output = model.generate(
                    **encoded, max_new_tokens=first.max_tokens, do_sample=sampling,
                    temperature=first.temperature if sampling else None,
                    top_p=first.top_p if sampling else None, top_k=None,
                    pad_token_id=tokenizer.pad_token_id,
                )
            latency = (time.monotonic() - started) / len(batch)
            prompt_len = encoded["input_ids"].shape[1]
            for row, i in enumerate(batch):
                new = output[row, prompt_len:]
                ended = (new == tokenizer.eos_token_id).nonzero()
                length = int(ended[0]) if len(ended) else len(new)
                results[i] = ChatResult(
                    key="", text=tokenizer.decode(new[:length], skip_special_tokens=True).strip(),
                    finish_reason="stop" if len(ended) else "length",
                    prompt_tokens=int(encoded["attention_mask"][row].sum()), completion_tokens=length,
                    latency_s=latency, model=requests[i].model,
                )
        return results  # type: ignore[return-value]

    def choice_logprobs(self, requests: list[ChatRequest], options: list[tuple[str, ...]]
                        ) -> list[tuple[list[float], int, list[int]]]:
        """For each request: (total log-likelihood of each option as the assistant's reply, prompt tokens,
        option token counts); see `choice_scoring.choice_logprobs`."""
        return choice_scoring.choice_logprobs(self, requests, options)

    def score_choices(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """Verdict requests answered by choice scoring (resources/choice_scoring.py); no sampling."""
        return choice_scoring.score_choices(self, requests)


def _settings(request: ChatRequest) -> tuple:
    return (request.temperature, request.max_tokens, request.top_p, request.seed is None)
