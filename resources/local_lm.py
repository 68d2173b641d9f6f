"""In-process chat models (transformers): an HF id, a local folder or a GGUF file, on the best device.

A GGUF file is de-quantised once (about 40 s on 2 cores for SmolLM2-135M) and cached with
`save_pretrained` under a folder named by the file's sha256, so every later load takes a second.
Loaded models are kept per process, chat models and scoring LMs (SocioT) in one cache: one load serves
every call of a run.

A request whose response_format is a verdict (`lib/llm_requests.verdict_response_format`) is answered
by choice scoring, not by generation: the log-likelihood of each label as the assistant's reply
(chat template applied, generation prompt added, then the label's own tokens, no end-of-turn token):
the prompts of a batch in one forward pass, whose key-value cache each option continues, no sampling. The most likely label is the verdict; its
probability is the softmax over the labels' total log-likelihoods. The answer text is
`{"verdict": "LABEL", "p": 0.93}` (the JSON the schema asks for, plus `p`), so the call cache keeps
the probability with the verdict. The bare label is scored, not the JSON text: the judge prompt asks
for one word, and a JSON prefix shared by every option would add nothing to the comparison.

Contextual calibration (a request's `calibration`, `lib/llm_requests.content_free_calibration`; Zhao et
al. 2021): each label's log-likelihood minus that of the same label given the content-free prompt (the
template with its fields "N/A"), then the softmax over labels. That is the paper's W = diag(p_cf)^-1 on the
label probabilities, renormalised: a label the prompt favours whatever the content loses that head start.
The content-free prompt is scored once per template, labels and model (kept per process).
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from pathlib import Path

import dagster as dg
from pydantic import Field

from resources.warehouse import exclusive_lock
from warmth_assets.lib import paths
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, verdict_labels
from warmth_assets.lib.model_sources import MODEL_TEMPLATE, chat_template_sha256, chat_template_text, resolve_model_file

_LOADED: dict[tuple, tuple] = {}
_PEFT: dict[tuple, object] = {}  # base key -> PeftModel holding every adapter loaded so far
_CONTENT_FREE: dict[tuple, list[float]] = {}  # (model identity, device, prompt, labels) -> label log-likelihoods
_LOAD_LOCK = threading.Lock()


def model_cache_dir() -> Path:
    """Converted models, shared by every WARMTH_HOME on the machine (keyed by content hash)."""
    return Path(os.environ.get("WARMTH_MODEL_CACHE") or paths.artifacts_dir() / "models")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


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


def best_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_model(source_kind: str, source: str, device: str = "auto", chat_template: str = MODEL_TEMPLATE):
    """(model, tokenizer) for a source, loaded once per process; `chat_template` other than "model" replaces the
    tokenizer's template with the file's ([[models]] chat_template)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = best_device() if device == "auto" else device

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
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        model = AutoModelForCausalLM.from_pretrained(pretrained, dtype=dtype).to(device)
        model.eval()
        return model, tokenizer

    return _cached((source_kind, source, device, chat_template), load)


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
    peft_model.set_adapter(adapter_name)
    return peft_model


class LocalLMResource(dg.ConfigurableResource):
    """Batched chat generation with a transformers model in this process, optionally through a LoRA adapter."""

    source_kind: str = Field(description="hf, local or gguf")
    source: str = Field(description="HF id, folder, GGUF path or package:<pkg>/<file>")
    device: str = Field("auto", description="auto: cuda when available, else cpu")
    batch_size: int = 8
    batch_max_chars: int = Field(
        0, description="Also cut a batch before (rows x longest prompt) passes this many characters; 0: off. "
        "Every row is padded to the longest, so long prompts are better generated in small batches")
    adapter_path: str = Field("", description="peft adapter folder; empty: the base model itself")
    adapter_sha256: str = Field("", description="content hash of the adapter (part of every cache key)")
    chat_template: str = Field(MODEL_TEMPLATE, description="'model': the tokenizer's own; else a Jinja template "
                               "file ([[models]] chat_template), whose hash enters the cache key")

    @property
    def identity(self) -> str:
        base = f"{self.source_kind}:{self.source}"
        if self.chat_template != MODEL_TEMPLATE:  # the default adds nothing: keys cached before stay valid
            base += f"#template={chat_template_sha256(self.chat_template)}"
        return f"{base}@{self.adapter_sha256 or self.adapter_path}" if self.adapter_path else base

    def _model(self):
        """(model to generate with, tokenizer, factory of the context to generate in) for this checkpoint."""
        import contextlib

        device = best_device() if self.device == "auto" else self.device
        model, tokenizer = load_model(self.source_kind, self.source, self.device, self.chat_template)
        base_key = (self.source_kind, self.source, device, self.chat_template)
        if self.adapter_path:
            name = (self.adapter_sha256 or hashlib.sha256(self.adapter_path.encode()).hexdigest())[:16]
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
            encoded = tokenizer.apply_chat_template(
                [requests[i].message_dicts() for i in batch], add_generation_prompt=True,
                return_tensors="pt", padding=True, return_dict=True,
            ).to(model.device)
            if first.seed is not None:
                torch.manual_seed(first.seed)
            sampling = first.temperature > 0
            started = time.monotonic()
            with torch.no_grad(), adapter_context():
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
        option token counts). Per batch, one forward pass over the prompts, whose key-value cache every option
        then continues: the prompt (hundreds of tokens for a judge) is computed once, not once per option."""
        import torch

        model, tokenizer, adapter_context = self._model()
        out: list[tuple | None] = [None] * len(requests)
        pad = tokenizer.pad_token_id
        for batch in self._batches(requests, list(range(len(requests)))):
            prompts = tokenizer.apply_chat_template([requests[i].message_dicts() for i in batch],
                                                    add_generation_prompt=True, tokenize=False)
            prompt_ids = tokenizer(prompts, add_special_tokens=False)["input_ids"]
            width = max(len(ids) for ids in prompt_ids)
            # Left padding: every prompt ends at the last position, where its options begin; positions count
            # real tokens only, as they would for the prompt alone.
            input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompt_ids], device=model.device)
            mask = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids],
                                device=model.device)
            owner, labels = [], []  # per option row: its prompt's row in the batch, its tokens
            for row, i in enumerate(batch):
                for label in options[i]:
                    label_ids = tokenizer(label, add_special_tokens=False)["input_ids"]
                    if not label_ids:
                        raise ValueError(f"label {label!r} has no tokens")
                    owner.append(row)
                    labels.append(label_ids)
            owners = torch.tensor(owner, device=model.device)
            longest = max(len(ids) for ids in labels)
            with torch.no_grad(), adapter_context():
                first = model(input_ids=input_ids, attention_mask=mask, position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                              use_cache=True, logits_to_keep=1)
                # The prompt's last logits predict each option's first token ...
                picked = torch.log_softmax(first.logits[:, -1].float(), dim=-1)[owners].gather(
                    -1, torch.tensor([[ids[0]] for ids in labels], device=model.device)).squeeze(-1)
                if longest > 1:
                    # ... and each option's own tokens the rest: its tokens but the last, fed after its prompt's
                    # cache (copied per option), right-padded (causal attention keeps padding out of real rows).
                    cache = first.cache  # transformers 5 (pinned): `cache`, formerly `past_key_values`
                    cache.reorder_cache(owners)
                    feed = torch.tensor([ids[:-1] + [pad] * (longest - len(ids)) for ids in labels], device=model.device)
                    real = torch.tensor([[1] * (len(ids) - 1) + [0] * (longest - len(ids)) for ids in labels],
                                        device=model.device)
                    start = mask.sum(-1)[owners].unsqueeze(-1)
                    logits = model(input_ids=feed, attention_mask=torch.cat([mask[owners], real], dim=-1),
                                   position_ids=start + torch.arange(longest - 1, device=model.device),
                                   cache=cache, use_cache=True).logits.float()
                    targets = torch.tensor([ids[1:] + [pad] * (longest - len(ids)) for ids in labels],
                                           device=model.device)
                    rest = torch.log_softmax(logits, dim=-1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)
                    picked = picked + (rest * real).sum(-1)
            row = 0
            for b, i in enumerate(batch):
                totals, lengths = [], []
                for _ in options[i]:
                    totals.append(float(picked[row]))
                    lengths.append(len(labels[row]))
                    row += 1
                out[i] = (totals, len(prompt_ids[b]), lengths)
        return out  # type: ignore[return-value]

    def content_free_logprobs(self, requests: list[ChatRequest], options: list[tuple[str, ...]]
                              ) -> list[list[float] | None]:
        """For each request: the log-likelihoods of its options given its calibration's content-free prompt
        (None without calibration). Each distinct content-free prompt is scored once per process."""
        out: list[list[float] | None] = [None] * len(requests)
        device = best_device() if self.device == "auto" else self.device
        keys, todo = [], {}
        for i, request in enumerate(requests):
            calibration = request.calibration_dict()
            if not calibration:
                keys.append(None)
                continue
            if calibration.get("method") != "content_free" or not calibration.get("messages"):
                raise ValueError(f"unknown choice calibration {request.calibration}")
            key = (self.identity, device, json.dumps(calibration["messages"]), tuple(options[i]))
            keys.append(key)
            if key not in _CONTENT_FREE and key not in todo:
                todo[key] = ChatRequest.build([tuple(m) for m in calibration["messages"]], model=request.model)
        if todo:
            scored = self.choice_logprobs(list(todo.values()), [k[3] for k in todo])
            for key, (totals, _, _) in zip(todo, scored):
                _CONTENT_FREE[key] = totals
        for i, key in enumerate(keys):
            if key is not None:
                out[i] = _CONTENT_FREE[key]
        return out

    def score_choices(self, requests: list[ChatRequest]) -> list[ChatResult]:
        """Verdict requests answered by choice scoring (see the module docstring); no sampling. A request with
        a calibration has its labels' log-likelihoods corrected by the content-free ones first."""
        import math

        options = [verdict_labels(r.response_format_dict()) for r in requests]
        started = time.monotonic()
        scored = self.choice_logprobs(requests, options)  # type: ignore[arg-type]
        content_free = self.content_free_logprobs(requests, options)  # type: ignore[arg-type]
        latency = (time.monotonic() - started) / max(1, len(requests))
        results = []
        for request, labels, (totals, prompt_tokens, lengths), free in zip(requests, options, scored, content_free):
            if free is not None:
                totals = [t - f for t, f in zip(totals, free)]
            top = max(totals)
            weights = [math.exp(t - top) for t in totals]
            best = max(range(len(totals)), key=lambda k: totals[k])
            p = weights[best] / sum(weights)
            results.append(ChatResult(
                key="", text=json.dumps({"verdict": labels[best], "p": round(p, 6)}), finish_reason="stop",
                prompt_tokens=prompt_tokens, completion_tokens=lengths[best], latency_s=latency, model=request.model))
        return results


def _settings(request: ChatRequest) -> tuple:
    return (request.temperature, request.max_tokens, request.top_p, request.seed is None)
