"""Choice scoring: verdict requests answered by the in-process model's log-likelihoods, not by generation.

A request whose response_format is a verdict (`lib/llm_requests.verdict_response_format`) gets the
log-likelihood of each label as the assistant's reply (chat template applied, generation prompt added, then
the label's own tokens, no end-of-turn token): the prompts of a batch in one forward pass, whose key-value
cache each option continues, no sampling. The most likely label is the verdict; its probability is the
softmax over the labels' total log-likelihoods. The answer text is `{"verdict": "LABEL", "p": 0.93}` (the
JSON the schema asks for, plus `p`), so the call cache keeps the probability with the verdict. The bare label
is scored, not the JSON text: the judge prompt asks for one word, and a JSON prefix shared by every option
would add nothing to the comparison.

Contextual calibration (a request's `calibration`, `lib/llm_requests.content_free_calibration`; Zhao et
al. 2021): each label's log-likelihood minus that of the same label given the content-free prompt (the
template with its fields "N/A"), then the softmax over labels. That is the paper's W = diag(p_cf)^-1 on the
label probabilities, renormalised: a label the prompt favours whatever the content loses that head start.
The content-free prompt is scored once per template, labels and model (kept per process).

Each function takes the `LocalLMResource` whose model answers (`lm`): its loaded model and adapter, its batches.
"""

from __future__ import annotations

import json
import math
import time

from resources.pretrained import best_device
from warmth_assets.lib.llm_requests import ChatRequest, ChatResult, verdict_labels

_CONTENT_FREE: dict[tuple, list[float]] = {}  # (model identity, device, prompt, labels) -> label log-likelihoods


def choice_logprobs(lm, requests: list[ChatRequest], options: list[tuple[str, ...]]
                    ) -> list[tuple[list[float], int, list[int]]]:
    """For each request: (total log-likelihood of each option as the assistant's reply, prompt tokens,
    option token counts). Per batch, one forward pass over the prompts, whose key-value cache every option
    then continues: the prompt (hundreds of tokens for a judge) is computed once, not once per option."""
    import torch

    model, tokenizer, adapter_context = lm._model()
    out: list[tuple | None] = [None] * len(requests)
    pad = tokenizer.pad_token_id
    for batch in lm._batches(requests, list(range(len(requests)))):
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
                cache = first.cache  # transformers 5 (pinned) calls it `cache` (4.x: `past_key_values`)
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


def content_free_logprobs(lm, requests: list[ChatRequest], options: list[tuple[str, ...]]
                          ) -> list[list[float] | None]:
    """For each request: the log-likelihoods of its options given its calibration's content-free prompt
    (None without calibration). Each distinct content-free prompt is scored once per process."""
    out: list[list[float] | None] = [None] * len(requests)
    device = best_device(lm.device)
    keys, todo = [], {}
    for i, request in enumerate(requests):
        calibration = request.calibration_dict()
        if not calibration:
            keys.append(None)
            continue
        if calibration.get("method") != "content_free" or not calibration.get("messages"):
            raise ValueError(f"unknown choice calibration {request.calibration}")
        key = (lm.identity, device, json.dumps(calibration["messages"]), tuple(options[i]))
        keys.append(key)
        if key not in _CONTENT_FREE and key not in todo:
            todo[key] = ChatRequest.build([tuple(m) for m in calibration["messages"]], model=request.model)
    if todo:
        scored = choice_logprobs(lm, list(todo.values()), [k[3] for k in todo])
        for key, (totals, _, _) in zip(todo, scored):
            _CONTENT_FREE[key] = totals
    for i, key in enumerate(keys):
        if key is not None:
            out[i] = _CONTENT_FREE[key]
    return out


def score_choices(lm, requests: list[ChatRequest]) -> list[ChatResult]:
    """Verdict requests answered by choice scoring (see the module docstring); no sampling. A request with
    a calibration has its labels' log-likelihoods corrected by the content-free ones first."""
    options = [verdict_labels(r.response_format_dict()) for r in requests]
    started = time.monotonic()
    scored = choice_logprobs(lm, requests, options)  # type: ignore[arg-type]
    content_free = content_free_logprobs(lm, requests, options)  # type: ignore[arg-type]
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
