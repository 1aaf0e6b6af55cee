"""Latency judges: the figures of a reply's turn record (its timeline document's ``metrics``).

``voice_to_voice_ms`` is the latency the rest of the leaderboard compares replies on
(:func:`speechlm_demo.timeline.compared_latency`, from the reference end of speech), and
``voice_to_voice_from`` names the mark it is measured from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..timeline import compared_latency

RECORD_FIGURES = ("engine_response_ms", "turn_detect_ms")  # taken from the record's metrics as they are


def latency_judges(timeline: Mapping[str, Any] | None) -> dict[str, float | str | None]:
    """``voice_to_voice_ms`` and its ``voice_to_voice_from``, ``engine_response_ms`` and ``turn_detect_ms``
    (None where the record lacks them)."""
    voice_to_voice, origin = compared_latency(timeline)
    out: dict[str, float | str | None] = {"voice_to_voice_ms": voice_to_voice, "voice_to_voice_from": origin}
    metrics = (timeline or {}).get("metrics") or {}
    for name in RECORD_FIGURES:
        value = metrics.get(name)
        out[name] = float(value) if isinstance(value, int | float) else None
    return out
