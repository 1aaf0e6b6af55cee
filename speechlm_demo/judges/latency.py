"""Latency judges: the figures of a reply's turn record (its timeline document's ``metrics``).

``voice_to_voice_ms`` is the latency the rest of the leaderboard compares replies on
(:func:`speechlm_demo.timeline.compared_latency`, from the reference end of speech); a record without a
reference (a live turn) gives the turn layer's figure instead. ``voice_to_voice_from`` names the mark it is
measured from either way, and the leaderboard uses only the first kind.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..timeline import compared_latency, measured_from

RECORD_FIGURES = ("engine_response_ms", "turn_detect_ms")  # taken from the record's metrics as they are


def latency_judges(timeline: Mapping[str, Any] | None) -> dict[str, float | str | None]:
    """``voice_to_voice_ms`` and its ``voice_to_voice_from``, ``engine_response_ms`` and ``turn_detect_ms``
    (None where the record lacks them)."""
    voice_to_voice, origin = compared_latency(timeline)
    metrics = (timeline or {}).get("metrics") or {}
    own = metrics.get("voice_to_voice_ms")
    if voice_to_voice is None and isinstance(own, int | float):  # no reference: the turn layer's, labelled so
        voice_to_voice, origin = float(own), measured_from("voice_to_voice_ms")
    out: dict[str, float | str | None] = {"voice_to_voice_ms": voice_to_voice, "voice_to_voice_from": origin}
    for name in RECORD_FIGURES:
        value = metrics.get(name)
        out[name] = float(value) if isinstance(value, int | float) else None
    return out
