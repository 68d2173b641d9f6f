"""The released code's loop over texts, sides and passes, written plainly: what `score_texts` (batched) is checked
against in tests/lib/test_sociot.py and timed against in bench/sociot_scoring.py and bench/gpu.py."""

from __future__ import annotations

from warmth_assets.lib.sociot import SocioTScore, _combine, naive_side_value


def naive_score_texts(texts: list[str], model, tokenizer, *, samples: int = 100, variant: str = "reference",
                      max_chars: int = 300) -> list[SocioTScore]:
    """The per-text loop of the released code: `samples` passes of batch 4 per side and text."""
    model.train()
    out = []
    for text in texts:
        warm = [naive_side_value(model, tokenizer, text, "warm", variant, max_chars) for _ in range(samples)]
        cold = [naive_side_value(model, tokenizer, text, "cold", variant, max_chars) for _ in range(samples)]
        out.append(_combine(warm, cold))
    return out
