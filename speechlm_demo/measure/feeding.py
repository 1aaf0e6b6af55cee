"""The feeding driver shared by ``bench``, Compare and listening sessions: a recorded turn, fed in real time.

A :class:`Prompt` is a WAV with its *reference* end of speech: from a sidecar ``NAME.json``
(``{"speech_end_s": ...}``) or estimated offline from the audio (:func:`estimate_speech_end`). :func:`run_prompt`
feeds it through ``Engine.open_session`` exactly as a live microphone would (20 ms frames after
``LEAD_SILENCE_S`` of silence, then silence) and returns every event with its arrival time.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio import AudioError, chunks, loud_span, read_audio
from ..engines.base import Engine, Event, SessionOptions, TurnEnd
from ..timeline import Timeline

log = logging.getLogger(__name__)

FRAME_S = 0.02
PREMATURE_TOLERANCE_S = 0.05
LEAD_SILENCE_S = 0.5


@dataclass
class Prompt:
    """One prompt WAV with its optional sidecars."""

    path: Path
    audio: np.ndarray
    speech_end_s: float
    reference: str | None = None
    end_source: str = "estimated"


def estimate_speech_end(audio: np.ndarray, rate: int, threshold_dbfs: float = -40.0) -> float:
    """Seconds at which the last 20 ms window louder than ``threshold_dbfs`` ends."""
    span = loud_span(audio, rate, threshold_dbfs, FRAME_S)
    return span[1] / rate if span else 0.0


def load_prompts(directory: Path, rate: int) -> list[Prompt]:
    """Every ``*.wav`` in ``directory`` (sorted), resampled to ``rate``, with its sidecars."""
    if not directory.is_dir():
        raise FileNotFoundError(f"prompt directory {directory} does not exist")
    prompts = []
    for wav in sorted(directory.glob("*.wav")):
        try:
            audio, _ = read_audio(str(wav), rate)
        except AudioError as exc:
            log.warning("skipping %s: %s", wav.name, exc)
            continue
        meta = wav.with_suffix(".json")
        text = wav.with_suffix(".txt")
        end, source = estimate_speech_end(audio, rate), "estimated"
        if meta.exists():
            end, source = float(json.loads(meta.read_text())["speech_end_s"]), "sidecar"
        reference = text.read_text().strip() if text.exists() else None
        prompts.append(Prompt(wav, audio, end, reference, source))
    if not prompts:
        raise FileNotFoundError(f"no usable .wav files in {directory}")
    return prompts


@dataclass
class Feed:
    """What feeding one prompt produced: every turn end, every event with its arrival time, the true end."""

    turn_ends: list[TurnEnd]
    arrivals: list[tuple[float, Event]]
    true_end: float

    @property
    def events(self) -> list[Event]:
        """The events alone, in arrival order."""
        return [event for _, event in self.arrivals]


def is_premature(timeline: Timeline, true_end: float) -> bool:
    """Whether the turn was committed before the true end of speech (``true_end``, clock seconds): a cut."""
    detected = timeline.marks.get("turn_detected")
    return detected is not None and detected < true_end - PREMATURE_TOLERANCE_S


def run_prompt(
    engine: Engine, prompt: Prompt, rate: int, tail_s: float, timeout_s: float, options: SessionOptions | None = None
) -> Feed:
    """Feed one prompt in real time (20 ms frames), then silence, until a turn ends after the true end of
    speech (or time runs out). Turn ends before it are premature cuts; every mark is measured from it."""
    arrivals: list[tuple[float, Event]] = []
    ended = threading.Event()
    started = time.monotonic()
    true_end = started + LEAD_SILENCE_S + prompt.speech_end_s

    def collect(event: Event) -> None:
        arrivals.append((time.monotonic(), event))
        if isinstance(event, TurnEnd) and not is_premature(event.timeline, true_end):
            ended.set()

    session = engine.open_session(options or SessionOptions(), collect)
    lead = np.zeros(int(LEAD_SILENCE_S * rate), np.float32)
    audio = np.concatenate([lead, prompt.audio, np.zeros(int(tail_s * rate), np.float32)])
    frame = int(rate * FRAME_S)
    try:
        for index, piece in enumerate(chunks(audio, frame)):
            due = started + index * FRAME_S
            time.sleep(max(0.0, due - time.monotonic()))
            session.push_audio(piece)
            if ended.is_set():
                break
        session.flush()
        ended.wait(timeout_s)
        turn_ends = [e for _, e in list(arrivals) if isinstance(e, TurnEnd)]
        for turn_end in turn_ends:
            marks = turn_end.timeline.marks
            if "user_speech_end" in marks:
                marks["vad_speech_end"] = marks.pop("user_speech_end")
            marks["user_speech_end"] = true_end
        return Feed(turn_ends, list(arrivals), true_end)
    finally:
        session.close()
