"""SocioT warmth (Cheng, Yu & Jurafsky 2025), as the study ran it (docs/study.md §4).

For a response, its first 300 characters are quoted into eight context strings, four warm
("My friend said, ...") and four cold ("The stranger said, ..."); an empty text is left unquoted
("My friend said, "), as the released code does. Each string is tokenised with `truncation=True,
max_length=1024`. One side's value is minus the language model's mean token cross-entropy over its
four sequences, padded with 0 into one batch with the matching attention mask (0 on padding) and
labels equal to the ids, padding included: padded positions count in the loss, and their logits are
those of a model that does not attend to padding. The LM is kept in train mode, so dropout makes each
pass differ: a side's score is the mean of `samples` passes, its uncertainty their standard error.
warmth = warm - cold, se = sqrt(se_warm^2 + se_cold^2).

Variants:
- "reference": exactly `compute_ci` of `compute_humt_sociot.py` in myracheng/humtdumt (commit cd67777),
  pinned by tests/lib/test_sociot_reference.py against a port of it.
- "masked": padding excluded from the loss, each context's own mean cross-entropy averaged.

Speed: instead of `samples` forward passes of batch 4 per side and text, rows of many texts, sides
and passes go through the model together (the dropout of each row is independent either way).
Each unit (text, side, pass) keeps its own padded length in the loss and each row its own attention
mask; right padding cannot change earlier positions of a causal LM (position ids count from 0 in every
row either way), so the values are those of the per-side batch. With dropout off
every pass is identical: each side is then computed once, exactly as the naive loop computes it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

WARM_CONTEXTS = ("My friend said, ", "The lover said, ", "The mentor said, ", "The idol said, ")
COLD_CONTEXTS = ("The stranger said, ", "The enemy said, ", "The examiner said, ", "The dictator said, ")
PAD_ID = 0  # torch pad_sequence's default, as released
MAX_TOKENS = 1024  # the released tokenizer call: truncation=True, max_length=1024
VARIANTS = ("reference", "masked")


@dataclass
class SocioTScore:
    warm: float
    cold: float
    warmth: float
    se: float
    warm_se: float
    cold_se: float


def label(variant: str, scoring_lm: str) -> str:
    """How a warmth number is named wherever it is shown: 'SocioT (reference, scorer gpt2)'."""
    return f"SocioT ({variant}, scorer {scoring_lm})"


def side_sequences(text: str, side: str, max_chars: int = 300) -> list[str]:
    cut = text[:max_chars]
    quoted = f'"{cut}"' if cut else ""  # released: prompt = f'"{prompt}"' if prompt else ""
    contexts = WARM_CONTEXTS if side == "warm" else COLD_CONTEXTS
    return [context + quoted for context in contexts]


def _encode(tokenizer, sequences: list[str]) -> list[list[int]]:
    return [list(tokenizer(s, max_length=MAX_TOKENS, truncation=True)["input_ids"]) for s in sequences]


def _padded(ids: list[list[int]], length: int):
    """(input ids padded with PAD_ID, attention mask: 1 on each row's own tokens, 0 on its padding)."""
    import torch

    batch = torch.tensor([row + [PAD_ID] * (length - len(row)) for row in ids])
    mask = torch.tensor([[1] * len(row) + [0] * (length - len(row)) for row in ids])
    return batch, mask


def naive_side_value(model, tokenizer, text: str, side: str, variant: str = "reference", max_chars: int = 300) -> float:
    """One pass for one side, written as the released code does it."""
    import torch

    ids = _encode(tokenizer, side_sequences(text, side, max_chars))
    batch, mask = _padded(ids, max(len(r) for r in ids))
    batch = batch.to(model.device)
    with torch.no_grad():
        if variant == "reference":
            return -float(model(input_ids=batch, attention_mask=mask.to(model.device), labels=batch).loss)
        labels = batch.clone()
        for i, row in enumerate(ids):
            labels[i, len(row):] = -100
        logits = model(input_ids=batch).logits[:, :-1]
        losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels[:, 1:], reduction="none")
        counts = (labels[:, 1:] != -100).sum(1).clamp(min=1)
        return -float((losses.sum(1) / counts).mean())


def _mean_se(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, 0.0
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def dropout_active(model) -> bool:
    """Whether passes differ: train mode and some dropout with p > 0 (modules, or Llama-style config)."""
    import torch

    if not model.training:
        return False
    if any(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in model.modules()):
        return True
    return bool(getattr(model.config, "attention_dropout", 0.0))


def score_texts(texts: list[str], model, tokenizer, *, samples: int = 100, variant: str = "reference",
                batch_size: int = 64, seed: int | None = None, max_chars: int = 300,
                reuse_deterministic: bool = True) -> list[SocioTScore]:
    """SocioT warmth of each text, in order. `batch_size` is rows (sequences) per forward pass.

    `reuse_deterministic=False` sends even a dropout-free model through the batched path (tests).
    """
    import torch

    if variant not in VARIANTS:
        raise ValueError(f"unknown SocioT variant {variant!r}; use one of {VARIANTS}")
    if seed is not None:
        torch.manual_seed(seed)
    model.train()  # the released implementation keeps dropout on
    if reuse_deterministic and not dropout_active(model):
        values = {(t, side): naive_side_value(model, tokenizer, texts[t], side, variant, max_chars)
                  for t in range(len(texts)) for side in ("warm", "cold")}
        return [_combine([values[(t, "warm")]] * samples, [values[(t, "cold")]] * samples) for t in range(len(texts))]

    units = []  # (text index, side, ids of its 4 sequences)
    for t, text in enumerate(texts):
        for side in ("warm", "cold"):
            units.append((t, side, _encode(tokenizer, side_sequences(text, side, max_chars))))
    # Similar lengths share forward passes: less padding computed for nothing.
    units.sort(key=lambda u: max(len(r) for r in u[2]))
    per_unit = max(1, batch_size // 4)
    samples_by = {(t, side): [] for t, side, _ in units}
    work = [(u, s) for u in units for s in range(samples)]
    for start in range(0, len(work), per_unit):
        chunk = work[start:start + per_unit]
        rows, lengths, unit_lengths = [], [], []
        for (t, side, ids), _ in chunk:
            unit_len = max(len(r) for r in ids)
            for r in ids:
                rows.append(r)
                lengths.append(len(r))
                unit_lengths.append(unit_len)
        width = max(unit_lengths)
        batch, mask = _padded(rows, width)
        batch, mask = batch.to(model.device), mask.to(model.device)
        with torch.inference_mode():  # dropout still applies: it follows train mode, not grad mode
            logits = model(input_ids=batch, attention_mask=mask).logits[:, :-1].float()
            token_ce = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch[:, 1:], reduction="none")
        positions = torch.arange(width - 1, device=token_ce.device)
        for i, ((t, side, _), _) in enumerate(chunk):
            block = token_ce[4 * i: 4 * i + 4]
            if variant == "reference":
                valid = positions < unit_lengths[4 * i] - 1
                value = -float(block[:, valid].sum() / (4 * int(valid.sum())))
            else:
                per_seq = [block[j, : lengths[4 * i + j] - 1].mean() for j in range(4)]
                value = -float(torch.stack(per_seq).mean())
            samples_by[(t, side)].append(value)
    return [_combine(samples_by[(t, "warm")], samples_by[(t, "cold")]) for t in range(len(texts))]


def _combine(warm_values: list[float], cold_values: list[float]) -> SocioTScore:
    warm, warm_se = _mean_se(warm_values)
    cold, cold_se = _mean_se(cold_values)
    return SocioTScore(warm=warm, cold=cold, warmth=warm - cold, se=math.sqrt(warm_se**2 + cold_se**2),
                       warm_se=warm_se, cold_se=cold_se)
