"""The turn record: what every consumer of a session (Talk, Compare, Blind A/B, listening sessions, ``bench``)
reads about one user turn and the engine's reply. Made only by :class:`~.observer.TurnObserver`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..timeline import ORIGIN_LABELS, Timeline


@dataclass
class TurnRecord:
    """One turn: the user's words, the reply (words, audio), status and the complete timeline.

    ``timeline`` holds the turn layer's marks (``user_speech_end``, ``turn_detected``, the engine's own marks),
    the observer's ``first_audio_out`` / ``last_audio_out`` (first / last audible sample, as it would play) and,
    where the turn was fed from a recording, ``reference_speech_end``.
    """

    engine_id: str
    turn_id: int
    timeline: Timeline
    user_text: str = ""
    reply_text: str = ""
    errors: list[str] = field(default_factory=list)
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sample_rate: int = 0
    arrived: float = 0.0  # when the session reported the turn's end (clock seconds)

    @property
    def status(self) -> str:
        """ok | failed | interrupted | no_reply (from the turn layer), or fallback: the engine's fallback answered."""
        if self.timeline.status == "ok" and self.answered_by:
            return "fallback"
        return self.timeline.status

    @property
    def answered_by(self) -> str:
        """The fallback engine that answered this turn instead of the engine itself ("" when it answered)."""
        return str(self.timeline.extra.get("answered_by") or "")

    @property
    def detail(self) -> str:
        """Why a turn did not end "ok" (empty otherwise)."""
        return self.timeline.detail

    def metrics(self) -> dict[str, float]:
        """Every metric the marks allow, in ms."""
        return self.timeline.metrics()

    @property
    def voice_to_voice_ms(self) -> float | None:
        """First audible reply sample minus the turn layer's end of speech."""
        return self.timeline.voice_to_voice_ms

    @property
    def voice_to_voice_ref_ms(self) -> float | None:
        """First audible reply sample minus the reference end of speech (None without a reference)."""
        return self.timeline.voice_to_voice_ref_ms

    def describe_latency(self) -> str:
        """``voice-to-voice 640 ms (from the reference end of speech)``, or the status if there is none."""
        for name in ("voice_to_voice_ref_ms", "voice_to_voice_ms"):
            value = self.metrics().get(name)
            if value is not None:
                origin = self.timeline.measured_from()[name]
                return f"voice-to-voice {value:.0f} ms (from {ORIGIN_LABELS[origin]})"
        return self.status

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: the timeline's record (marks, metrics, what each is measured from) plus the words, with
        the turn's :attr:`status` (``fallback`` where the fallback answered: the timeline alone says ``ok``)."""
        doc = {**self.timeline.to_dict(), "user_text": self.user_text, "reply_text": self.reply_text}
        return doc | {"status": self.status, "answered_by": self.answered_by}
