"""Full-duplex behaviour, measured with Full-Duplex-Bench's definitions on what the engine played.

The engine's output chunks are laid on the prompt's clock (each at the input position where it was emitted,
never before the previous chunk ends), and its speech is found with a 20 ms energy gate (gaps under
``MERGE_GAP_S`` bridged). A speech segment shorter than ``BACKCHANNEL_MAX_S`` is a backchannel ("mm-hm"),
anything longer takes the floor. Per prompt, from the prompt's cue times (seconds, sidecar JSON):

* pause handling (``pause_start_s``/``pause_end_s``): ``pause_takeover`` 1 when the engine takes the floor
  during the user's mid-turn pause (it should not): speech that starts in the pause and is longer than a
  backchannel or is still going when the user resumes (a reply the user cut short is still a takeover);
* smooth turn end (``speech_end_s``): ``turn_takeover`` 1 when it takes the floor after the user finished,
  and ``response_latency_ms`` from the end of speech to that onset;
* user interruption (``interrupt_start_s``/``interrupt_end_s``, a second voice while the engine speaks):
  ``stop_latency_ms`` from the interruption's start to the end of the engine's speech (when it was speaking),
  ``interrupt_takeover`` 1 when it answers after the interruption, ``interrupt_response_ms`` to that onset;
* ``backchannels`` during the user's speech and ``backchannel_per_min`` of user speech.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

SPEECH_DBFS = -40.0
WINDOW_S = 0.02
MERGE_GAP_S = 0.2
BACKCHANNEL_MAX_S = 1.0


@dataclass(frozen=True)
class Segment:
    """Engine speech from ``start`` to ``end`` (seconds on the prompt's clock)."""

    start: float
    end: float

    @property
    def backchannel(self) -> bool:
        """Short enough to be a backchannel rather than a turn."""
        return self.end - self.start < BACKCHANNEL_MAX_S


def output_track(chunks: Iterable[tuple[float, np.ndarray]], rate: int) -> tuple[np.ndarray, float]:
    """The played signal: each ``(position_s, pcm)`` chunk at its position or right after the previous one.
    Returns the signal and its start time (the first chunk's position)."""
    placed: list[tuple[int, np.ndarray]] = []
    cursor: int | None = None
    origin: float | None = None
    for position, pcm in chunks:
        samples = np.asarray(pcm, np.float32).reshape(-1)
        if origin is None:
            origin, cursor = position, 0
        start = max(round((position - origin) * rate), cursor or 0)
        placed.append((start, samples))
        cursor = start + len(samples)
    if origin is None:
        return np.zeros(0, np.float32), 0.0
    signal = np.zeros(cursor or 0, np.float32)
    for start, samples in placed:
        signal[start : start + len(samples)] = samples
    return signal, origin


def speech_segments(signal: np.ndarray, rate: int, origin: float = 0.0) -> list[Segment]:
    """Where ``signal`` (starting at ``origin`` s) is louder than :data:`SPEECH_DBFS` in 20 ms windows."""
    size = max(1, int(rate * WINDOW_S))
    count = len(signal) // size
    if not count:
        return []
    power = np.square(signal[: count * size].astype(np.float64)).reshape(count, size).mean(axis=1)
    loud = 10 * np.log10(power + 1e-24) > SPEECH_DBFS
    segments: list[Segment] = []
    edges = np.flatnonzero(np.diff(np.r_[0, loud.astype(np.int8), 0]))
    for first, last in zip(edges[::2], edges[1::2], strict=True):
        start, end = origin + first * WINDOW_S, origin + last * WINDOW_S
        if segments and start - segments[-1].end < MERGE_GAP_S:
            segments[-1] = Segment(segments[-1].start, end)
        else:
            segments.append(Segment(start, end))
    return [Segment(round(s.start, 4), round(s.end, 4)) for s in segments]


def _first_turn(segments: list[Segment], after: float, before: float = float("inf")) -> Segment | None:
    return next((s for s in segments if not s.backchannel and after <= s.start < before), None)


def user_spans(cues: Mapping[str, float]) -> list[tuple[float, float]]:
    """When the user speaks: the question (and the interruption), minus a mid-turn pause."""
    start, end = cues.get("speech_start_s", 0.0), cues.get("speech_end_s")
    if end is None:
        return []
    if "interrupt_start_s" in cues and "question_end_s" in cues:
        return [(start, cues["question_end_s"]), (cues["interrupt_start_s"], cues.get("interrupt_end_s", end))]
    if "pause_start_s" in cues and "pause_end_s" in cues:
        return [(start, cues["pause_start_s"]), (cues["pause_end_s"], end)]
    return [(start, end)]


def duplex_metrics(segments: list[Segment], cues: Mapping[str, float]) -> dict[str, float | None]:
    """The metrics that the prompt's cues allow (see the module docstring); times in ms, flags 0/1."""
    out: dict[str, float | None] = {}
    end = cues.get("speech_end_s")
    if "pause_start_s" in cues and "pause_end_s" in cues:
        start, end_pause = cues["pause_start_s"], cues["pause_end_s"]
        took = [s for s in segments if start <= s.start < end_pause and (not s.backchannel or s.end > end_pause)]
        out["pause_takeover"] = float(bool(took))
    if "interrupt_start_s" in cues and "interrupt_end_s" in cues:
        onset, over = cues["interrupt_start_s"], cues["interrupt_end_s"]
        speaking = next((s for s in segments if s.start <= onset < s.end), None)
        out["stop_latency_ms"] = round((speaking.end - onset) * 1000, 1) if speaking else None
        answer = _first_turn(segments, max(over, speaking.end if speaking else over))
        out["interrupt_takeover"] = float(answer is not None)
        out["interrupt_response_ms"] = round((answer.start - over) * 1000, 1) if answer else None
    elif end is not None:
        answer = _first_turn(segments, end)
        out["turn_takeover"] = float(answer is not None)
        out["response_latency_ms"] = round((answer.start - end) * 1000, 1) if answer else None
    spans = user_spans(cues)
    speaking_s = sum(b - a for a, b in spans)
    if speaking_s > 0:
        heard = [s for s in segments if s.backchannel and any(a <= s.start < b for a, b in spans)]
        out["backchannels"] = float(len(heard))
        out["backchannel_per_min"] = round(len(heard) / speaking_s * 60, 2)
    return out


RATES = ("pause_takeover", "turn_takeover", "interrupt_takeover", "backchannel_per_min")
LATENCIES = ("response_latency_ms", "stop_latency_ms", "interrupt_response_ms")


def summarise_duplex(per_prompt: Iterable[Mapping[str, float | None]]) -> dict[str, dict[str, float]]:
    """Means of the rates and p50 / mean of the latencies over the prompts that have them."""
    rows = list(per_prompt)
    summary: dict[str, dict[str, float]] = {}
    for name in RATES + LATENCIES:
        values = [float(v) for r in rows if (v := r.get(name)) is not None]
        if values:
            stats = {"mean": round(float(np.mean(values)), 3), "n": len(values)}
            if name in LATENCIES:
                stats["p50"] = round(float(np.percentile(values, 50)), 1)
            summary[name] = stats
    return summary
