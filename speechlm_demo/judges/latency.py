"""Latency judges: the figures of a reply's turn record (today its timeline document's ``metrics``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

LATENCY_FIGURES = ("voice_to_voice_ms", "engine_response_ms", "turn_detect_ms")


def latency_judges(timeline: Mapping[str, Any] | None) -> dict[str, float | None]:
    """``voice_to_voice_ms``, ``engine_response_ms`` and ``turn_detect_ms`` (None where the record lacks them)."""
    metrics = (timeline or {}).get("metrics") or {}
    out: dict[str, float | None] = {}
    for name in LATENCY_FIGURES:
        value = metrics.get(name)
        out[name] = float(value) if isinstance(value, int | float) else None
    return out
