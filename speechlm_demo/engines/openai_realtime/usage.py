"""Tokens and cost of one response, from ``response.done``'s ``response.usage``
(``RealtimeResponseUsage`` in openai 3.57.0: input/output tokens with text/audio/cached details)."""

from __future__ import annotations

import math
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .events import object_field


class Prices(BaseModel):
    """US dollars per million tokens (set them from the provider's price list; 0 = not counted)."""

    model_config = ConfigDict(extra="forbid")

    text_in: float = Field(0.0, ge=0)
    text_in_cached: float = Field(0.0, ge=0)
    audio_in: float = Field(0.0, ge=0)
    audio_in_cached: float = Field(0.0, ge=0)
    text_out: float = Field(0.0, ge=0)
    audio_out: float = Field(0.0, ge=0)


def _int(mapping: dict[str, Any], key: str) -> int:
    value = mapping.get(key)
    return int(value) if isinstance(value, (int, float)) and math.isfinite(value) else 0


def turn_usage(usage: Any, prices: Prices) -> dict[str, Any]:
    """Token counts and cost (``cost_usd``) of one response; an absent or odd usage gives zeros."""
    usage = usage if isinstance(usage, dict) else {}
    inp, out = object_field(usage, "input_token_details"), object_field(usage, "output_token_details")
    cached = object_field(inp, "cached_tokens_details")
    text_in, audio_in = _int(inp, "text_tokens"), _int(inp, "audio_tokens")
    cached_text, cached_audio = _int(cached, "text_tokens"), _int(cached, "audio_tokens")
    if not cached and _int(inp, "cached_tokens"):  # older shape: one cached count, billed as text
        cached_text = min(text_in, _int(inp, "cached_tokens"))
    text_out, audio_out = _int(out, "text_tokens"), _int(out, "audio_tokens")
    cost = (
        (text_in - cached_text) * prices.text_in
        + cached_text * prices.text_in_cached
        + (audio_in - cached_audio) * prices.audio_in
        + cached_audio * prices.audio_in_cached
        + text_out * prices.text_out
        + audio_out * prices.audio_out
    ) / 1e6
    return {
        "input_tokens": _int(usage, "input_tokens"),
        "output_tokens": _int(usage, "output_tokens"),
        "total_tokens": _int(usage, "total_tokens"),
        "input_text_tokens": text_in,
        "input_audio_tokens": audio_in,
        "cached_tokens": cached_text + cached_audio,
        "output_text_tokens": text_out,
        "output_audio_tokens": audio_out,
        "cost_usd": round(cost, 6),
    }
