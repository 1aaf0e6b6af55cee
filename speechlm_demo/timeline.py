"""Per-turn timeline: named marks on one monotonic clock, the spans between them, and metrics.

Every engine's turn is measured the same way (the marks come from :mod:`speechlm_demo.measure.observer`).
Two ends of the user's speech are kept apart:

* ``user_speech_end`` — the turn layer's own estimate (the last voiced VAD window; never the decision time);
  every session has it, live ones included;
* ``reference_speech_end`` — a reference independent of any engine: the sidecar ``speech_end_s`` of a prompt,
  or an offline estimate from the recorded turn (``bench``, Compare, Blind A/B, listening sessions).

``reply_started`` is when the engine began answering (speculatively, at a short pause); ``turn_detected`` is
when the turn layer committed to the reply. Each metric is measured from one named mark
(:func:`measured_from`): ``voice_to_voice_ms`` from ``user_speech_end``, ``voice_to_voice_ref_ms`` from
``reference_speech_end``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

STANDARD_MARKS: tuple[str, ...] = (
    "user_speech_start",
    "reference_speech_end",
    "user_speech_end",
    "reply_started",
    "turn_detected",
    "asr_start",
    "asr_final",
    "llm_first_token",
    "llm_first_sentence",
    "first_audio_out",
    "last_audio_out",
)

# Marks of engines that talk to a model server (vLLM-Omni, vLLM): the request leaving, the first reply text
# and the first reply audio arriving from the server (before any playback queue).
SERVER_MARKS: tuple[str, ...] = ("request_sent", "first_text", "first_audio_in")

# (row label, start mark, end mark): the stages drawn in the timeline plot, top to bottom.
STAGES: tuple[tuple[str, str, str], ...] = (
    ("User speech", "user_speech_start", "user_speech_end"),
    ("Turn detection", "user_speech_end", "turn_detected"),
    ("ASR", "asr_start", "asr_final"),
    ("LLM first token", "asr_final", "llm_first_token"),
    ("LLM first sentence", "llm_first_token", "llm_first_sentence"),
    ("TTS first audio", "llm_first_sentence", "first_audio_out"),
    ("Server first text", "request_sent", "first_text"),
    ("Server first audio", "request_sent", "first_audio_in"),
    ("Reply pipeline", "reply_started", "first_audio_out"),
    ("Reply audio", "first_audio_out", "last_audio_out"),
)

# metric name -> (start mark or marks, end mark), all in milliseconds; of several start marks the first
# one present is used.
METRICS: dict[str, tuple[str | tuple[str, ...], str]] = {
    "voice_to_voice_ms": ("user_speech_end", "first_audio_out"),
    "voice_to_voice_ref_ms": ("reference_speech_end", "first_audio_out"),
    "turn_detect_ms": ("user_speech_end", "turn_detected"),
    "turn_detect_ref_ms": ("reference_speech_end", "turn_detected"),
    # how late (+) or early (-) the turn layer's end of speech is against the reference
    "speech_end_error_ms": ("reference_speech_end", "user_speech_end"),
    "asr_ms": ("asr_start", "asr_final"),
    "llm_ttft_ms": ("asr_final", "llm_first_token"),
    "llm_first_sentence_ms": ("asr_final", "llm_first_sentence"),
    "tts_first_audio_ms": ("llm_first_sentence", "first_audio_out"),
    # from when the engine was asked: a half-duplex reply starts (speculatively) before its commit; a
    # full-duplex engine, always listening, has no start and is measured from the commit
    "engine_response_ms": (("reply_started", "turn_detected"), "first_audio_out"),
    "server_first_text_ms": ("request_sent", "first_text"),
    "server_first_audio_ms": ("request_sent", "first_audio_in"),
    "user_speech_ms": ("user_speech_start", "user_speech_end"),
    "reply_audio_ms": ("first_audio_out", "last_audio_out"),
}

_OVERWRITE_PREFIX = "last_"
ORIGIN_LABELS = {
    "user_speech_end": "the turn layer's end of speech",
    "reference_speech_end": "the reference end of speech",
}


def measured_from(metric: str, marks: dict[str, float] | None = None) -> str | None:
    """The mark ``metric`` is measured from (of several candidates, the first one in ``marks``)."""
    starts = METRICS[metric][0]
    candidates = (starts,) if isinstance(starts, str) else starts
    if marks is None:
        return candidates[0]
    return next((start for start in candidates if start in marks), None)


# The voice-to-voice latency replies are compared on (Compare, Blind A/B, the vote rows, the leaderboard and
# its judges), and the mark it is measured from: the reference end of speech of the fed turn.
COMPARED_LATENCY = "voice_to_voice_ref_ms"
LATENCY_FROM: str = measured_from(COMPARED_LATENCY) or ""


def compared_latency(doc: Mapping[str, Any] | None) -> tuple[float | None, str | None]:
    """The :data:`COMPARED_LATENCY` of a turn's :meth:`Timeline.to_dict` document and the mark it is measured
    from; ``(None, None)`` without one. A document written before metrics named their origin (no
    ``measured_from``) had one voice-to-voice figure, ``voice_to_voice_ms``, measured from the reference."""
    doc = doc or {}
    metrics = doc.get("metrics") or {}
    legacy = "measured_from" not in doc
    value = metrics.get("voice_to_voice_ms" if legacy else COMPARED_LATENCY)
    if not isinstance(value, int | float) or isinstance(value, bool):
        return None, None
    origin = LATENCY_FROM if legacy else (doc["measured_from"] or {}).get(COMPARED_LATENCY, LATENCY_FROM)
    return float(value), origin


@dataclass(frozen=True)
class Span:
    """A drawn stage: label and its start/end in ms relative to the timeline's origin."""

    label: str
    start_ms: float
    end_ms: float

    @property
    def duration_ms(self) -> float:
        """Length of the span."""
        return self.end_ms - self.start_ms


@dataclass
class Timeline:
    """Marks of one turn. The first time a name is marked wins, except names starting with ``last_``."""

    turn_id: int = 0
    engine_id: str = ""
    clock: Callable[[], float] = field(default=time.monotonic, repr=False, compare=False)
    marks: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    detail: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def mark(self, name: str, t: float | None = None) -> float:
        """Record ``name`` at ``t`` (default: now). Returns the stored time."""
        when = self.clock() if t is None else float(t)
        if name in self.marks and not name.startswith(_OVERWRITE_PREFIX):
            return self.marks[name]
        self.marks[name] = when
        return when

    def has(self, *names: str) -> bool:
        """Whether every name is marked."""
        return all(name in self.marks for name in names)

    def between_ms(self, start: str, end: str) -> float | None:
        """Milliseconds from ``start`` to ``end``, or None if either is missing."""
        if not self.has(start, end):
            return None
        return (self.marks[end] - self.marks[start]) * 1000.0

    @property
    def origin(self) -> float | None:
        """t = 0 for plots: the reference end of speech, else the turn layer's (else the first mark)."""
        for name in ("reference_speech_end", "user_speech_end"):
            if name in self.marks:
                return self.marks[name]
        return min(self.marks.values()) if self.marks else None

    def relative_ms(self) -> dict[str, float]:
        """Every mark in ms relative to :attr:`origin`, in time order."""
        origin = self.origin
        if origin is None:
            return {}
        ordered = sorted(self.marks.items(), key=lambda item: item[1])
        return {name: round((t - origin) * 1000.0, 1) for name, t in ordered}

    def spans(self) -> list[Span]:
        """The stages of :data:`STAGES` whose both marks exist, relative to :attr:`origin`."""
        rel = self.relative_ms()
        return [
            Span(label, rel[start], rel[end])
            for label, start, end in STAGES
            if start in rel and end in rel and rel[end] >= rel[start]
        ]

    def metrics(self) -> dict[str, float]:
        """The metrics of :data:`METRICS` that can be computed from the marks present."""
        out: dict[str, float] = {}
        for name, (_starts, end) in METRICS.items():
            start = measured_from(name, self.marks)
            value = self.between_ms(start, end) if start else None
            if value is not None:
                out[name] = round(value, 1)
        return out

    def measured_from(self) -> dict[str, str]:
        """For each metric present, the mark it is measured from."""
        return {name: measured_from(name, self.marks) or "" for name in self.metrics()}

    @property
    def voice_to_voice_ms(self) -> float | None:
        """first_audio_out - user_speech_end (the turn layer's end of speech), in ms."""
        return self.between_ms("user_speech_end", "first_audio_out")

    @property
    def voice_to_voice_ref_ms(self) -> float | None:
        """first_audio_out - reference_speech_end, in ms."""
        return self.between_ms("reference_speech_end", "first_audio_out")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record: absolute marks, relative marks and metrics."""
        return {
            "turn_id": self.turn_id,
            "engine_id": self.engine_id,
            "status": self.status,
            "detail": self.detail,
            "marks_ms": self.relative_ms(),
            "metrics": self.metrics(),
            "measured_from": self.measured_from(),
            **({"extra": self.extra} if self.extra else {}),
        }


def usage_note(extra: dict[str, Any]) -> str:
    """`` · N tokens, $X`` for a turn whose engine reported usage (a paid API), else ``""``."""
    usage = extra.get("usage")
    if not isinstance(usage, dict):
        return ""
    return f" · {usage.get('total_tokens', 0)} tokens, ${usage.get('cost_usd', 0.0):.4f}"
