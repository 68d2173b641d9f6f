"""Chat requests, their cache keys, retry timing and usage accounting (no network, no Dagster)."""

from __future__ import annotations

import email.utils
import hashlib
import json
import random
import time
from dataclasses import dataclass, field, replace
from typing import Any, Mapping


def verdict_response_format(labels: tuple[str, ...] | list[str]) -> dict:
    """Structured output constrained to one of `labels`: the answer is `{"verdict": "<label>"}`.

    OpenAI, vLLM and llama.cpp's server honour it as a JSON schema; the in-process backend
    (resources/choice_scoring.py) answers it by scoring each label (choice scoring)."""
    return {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": {
        "type": "object", "properties": {"verdict": {"type": "string", "enum": list(labels)}},
        "required": ["verdict"], "additionalProperties": False}}}


def verdict_labels(response_format: Mapping | None) -> tuple[str, ...] | None:
    """The labels of a `verdict_response_format`; None for any other (or no) response format."""
    try:
        enum = response_format["json_schema"]["schema"]["properties"]["verdict"]["enum"]  # type: ignore[index]
    except (KeyError, TypeError):
        return None
    return tuple(enum) if enum and all(isinstance(label, str) and label for label in enum) else None


def content_free_calibration(messages: list[dict] | list[tuple[str, str]]) -> dict:
    """Contextual calibration of choice scoring (Zhao et al. 2021, "Calibrate Before Use"): the label
    log-likelihoods of a request are corrected by those of the same labels given `messages`, the request's
    prompt template with a content-free input (e.g. every field "N/A"). Only the in-process backend honours it
    (resources/choice_scoring.py); `LLMResource` refuses it elsewhere rather than cache an uncalibrated answer under
    a calibrated key."""
    pairs = [[m["role"], m["content"]] if isinstance(m, Mapping) else [m[0], m[1]] for m in messages]
    return {"method": "content_free", "messages": pairs}


SAMPLING = ("temperature", "max_tokens", "seed", "top_p")


@dataclass(frozen=True)
class GenerateConfig:
    """How a call samples, passed whole (as inspect_ai's `GenerateConfig`): callers hand one of these to
    `ChatRequest.build`, never the fields one by one. Every field is part of the request's key and body."""

    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    top_p: float | None = None


@dataclass(frozen=True)
class ChatRequest:
    """One chat call. Everything that can change the answer is part of its cache key."""

    messages: tuple[tuple[str, str], ...]
    model: str
    temperature: float = 0.0
    max_tokens: int = 512
    seed: int | None = None
    template_version: str = ""
    top_p: float | None = None
    # Extra salt for the key: e.g. the evaluation date of a moving-target model, so a scheduled
    # re-evaluation asks again instead of reading yesterday's answer.
    cache_salt: str = ""
    # Structured output (the body's `response_format`), as canonical JSON; "" = none. Part of the key
    # only when set, so every request without one keeps the key it had before the field existed.
    response_format: str = ""
    # max_tokens of this request's free-text form (`free_text()`), sent instead where a server rejects
    # response_format; None: the same max_tokens. Not in the key: it changes only the free-text form,
    # whose own key holds it.
    free_text_max_tokens: int | None = None
    # Calibration of choice scoring (`content_free_calibration`), canonical JSON; "" = none. It changes the
    # answer, so it is part of the key, but only when set: an uncalibrated request keeps the key it had.
    calibration: str = ""

    def __post_init__(self):
        for name in ("response_format", "calibration"):  # a dict: stored canonical, so equal values key equally
            value = getattr(self, name)
            if not isinstance(value, str):
                canonical = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")) \
                    if value else ""
                object.__setattr__(self, name, canonical)

    @staticmethod
    def build(messages: list[dict] | list[tuple[str, str]], *, model: str,
              config: GenerateConfig = GenerateConfig(), **kwargs) -> "ChatRequest":
        """A request from chat messages (dicts or pairs); its sampling is `config`, whole."""
        if unpacked := sorted(set(kwargs) & set(SAMPLING)):
            raise TypeError(f"ChatRequest.build: pass {', '.join(unpacked)} in config=GenerateConfig(...)")
        pairs = tuple(
            (m["role"], m["content"]) if isinstance(m, Mapping) else (m[0], m[1]) for m in messages
        )
        return ChatRequest(messages=pairs, model=model, temperature=config.temperature, max_tokens=config.max_tokens,
                           seed=config.seed, top_p=config.top_p, **kwargs)

    @property
    def config(self) -> GenerateConfig:
        return GenerateConfig(self.temperature, self.max_tokens, self.seed, self.top_p)

    def message_dicts(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def response_format_dict(self) -> dict[str, Any] | None:
        return json.loads(self.response_format) if self.response_format else None

    def calibration_dict(self) -> dict[str, Any] | None:
        return json.loads(self.calibration) if self.calibration else None

    def free_text(self) -> "ChatRequest":
        """The same request without response_format (for a server without structured output); a calibration
        of choice scoring goes with it (a free-text answer has no label scores to calibrate)."""
        if not self.response_format:
            return self
        return replace(self, response_format="", free_text_max_tokens=None, calibration="",
                       max_tokens=self.free_text_max_tokens or self.max_tokens)

    def body(self) -> dict[str, Any]:
        """The chat-completions body as sent, synchronously or as a Batch API line: one builder, so both
        paths ask the very same question. Optional fields only when set (servers reject a null seed)."""
        body: dict[str, Any] = {"model": self.model, "messages": self.message_dicts(),
                                "temperature": self.temperature, "max_tokens": self.max_tokens}
        if self.seed is not None:
            body["seed"] = self.seed
        if self.top_p is not None:
            body["top_p"] = self.top_p
        if self.response_format:
            body["response_format"] = self.response_format_dict()
        return body

    def key(self, provider: str, base_url: str) -> str:
        payload = {
            "provider": provider,
            "base_url": base_url.rstrip("/"),
            "model": self.model,
            "messages": self.messages,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "top_p": self.top_p,
            "template_version": self.template_version,
            "cache_salt": self.cache_salt,
        }
        if self.response_format:  # only when set: a request without one keeps its earlier key
            payload["response_format"] = json.loads(self.response_format)
        if self.calibration:  # likewise: only when set
            payload["calibration"] = json.loads(self.calibration)
        canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass
class ChatResult:
    key: str
    text: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    model: str
    cached: bool = False


@dataclass
class Usage:
    requests_sent: int = 0
    cache_hits: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retries: int = 0
    errors: int = 0
    by_model: dict[str, list[int]] = field(default_factory=dict)

    def add(self, result: ChatResult) -> None:
        if result.cached:
            self.cache_hits += 1
            return
        self.requests_sent += 1
        self.prompt_tokens += result.prompt_tokens
        self.completion_tokens += result.completion_tokens
        tokens = self.by_model.setdefault(result.model, [0, 0])
        tokens[0] += result.prompt_tokens
        tokens[1] += result.completion_tokens

    def cost_usd(self, prices: Mapping[str, Mapping[str, float]]) -> float:
        """Dollars for the tokens actually sent, priced as the budget prices them (lib/costs.py)."""
        from warmth_assets.lib.costs import usd

        return sum(usd(model, prompt, completion, prices) for model, (prompt, completion) in self.by_model.items())

    def as_metadata(self, prices: Mapping[str, Mapping[str, float]]) -> dict:
        return {
            "llm_requests_sent": self.requests_sent,
            "llm_cache_hits": self.cache_hits,
            "llm_prompt_tokens": self.prompt_tokens,
            "llm_completion_tokens": self.completion_tokens,
            "llm_retries": self.retries,
            "llm_errors": self.errors,
            "llm_estimated_cost_usd": round(self.cost_usd(prices), 6),
        }


ANSWER_COLUMNS = ("finish_reason", "prompt_tokens", "completion_tokens", "cached", "request_key", "model",
                  "provider")


def answer_columns(requests: list[ChatRequest], results: list[ChatResult], *, key, provider: str,
                   text: str = "response", only: tuple[str, ...] | None = None) -> dict[str, list | str]:
    """The columns a stage stores for its answers: the answer's text (named `text`), then `ANSWER_COLUMNS`
    (`key`: the request key function of the resource that answered; `model`: the model asked); `only` keeps
    those it names, in its order."""
    made = {
        text: lambda: [r.text for r in results], "finish_reason": lambda: [r.finish_reason for r in results],
        "prompt_tokens": lambda: [r.prompt_tokens for r in results],
        "completion_tokens": lambda: [r.completion_tokens for r in results],
        "cached": lambda: [r.cached for r in results], "request_key": lambda: [key(q) for q in requests],
        "model": lambda: [q.model for q in requests], "provider": lambda: provider,
    }
    return {name: made[name]() for name in (only or (text, *ANSWER_COLUMNS))}


def parse_retry_after(headers: Mapping[str, str] | None, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` or `Retry-After` (seconds or an HTTP date); None if absent."""
    if not headers:
        return None
    lowered = {k.lower(): v for k, v in headers.items()}
    if "retry-after-ms" in lowered:
        try:
            return max(0.0, float(lowered["retry-after-ms"]) / 1000)
        except ValueError:
            pass
    value = lowered.get("retry-after")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        parsed = email.utils.parsedate_to_datetime(value) if value else None
        if parsed is None:
            return None
        return max(0.0, parsed.timestamp() - (now if now is not None else time.time()))


def backoff_delay(attempt: int, base_s: float, cap_s: float, retry_after: float | None,
                  rng: random.Random | None = None) -> float:
    """Full-jitter exponential backoff; a server's Retry-After is a floor, never shortened."""
    rng = rng or random.Random()
    delay = rng.uniform(0, min(cap_s, base_s * (2 ** attempt)))
    return max(delay, retry_after) if retry_after is not None else delay
