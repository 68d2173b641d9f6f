"""Providers as backends: the one place a provider string chooses the class that answers for it.

A new provider is one module here (a `Backend`) and one line in `BACKENDS`; the call layer (`resources/llm.py`)
never asks which provider it has.
"""

from __future__ import annotations

from resources.backends.base import Backend
from resources.backends.demo_rules import DemoRules
from resources.backends.in_process import InProcess
from resources.backends.openai_compatible import OpenAICompatible
from warmth_assets.lib.demo_rewriter import PROVIDER as DEMO_RULES

__all__ = ["BACKENDS", "Backend", "backend_class"]

BACKENDS: dict[str, type[Backend]] = {
    "openai": OpenAICompatible,  # OpenAI, Azure, vLLM, Ollama, llama.cpp: any OpenAI-compatible server
    "local": InProcess,  # transformers (+ peft adapters) in this process
    DEMO_RULES: DemoRules,  # the offline demo's rule-based rewriter ([rewrite] rewriter = "demo_rules")
}


def backend_class(provider: str) -> type[Backend]:
    try:
        return BACKENDS[provider]
    except KeyError:
        raise ValueError(f"provider {provider!r}: use one of {', '.join(map(repr, BACKENDS))}") from None
