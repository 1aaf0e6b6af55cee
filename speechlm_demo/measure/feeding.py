"""The feeding driver shared by ``bench``, Compare and listening sessions: a recorded turn, fed in real time.

A :class:`Prompt` is a WAV with its *reference* end of speech: from a sidecar ``NAME.json``
(``{"speech_end_s": ...}``) or estimated offline from the audio (:func:`estimate_speech_end`). :func:`run_prompt`
feeds it through ``Engine.open_session`` exactly as a live microphone would (20 ms frames after
``LEAD_SILENCE_S`` of silence, then silence) and returns every event with its arrival time.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..audio import chunks, loud_span
from ..engines.base import Engine, ErrorEvent, Event, SessionOptions
from ..prompt_files import MAX_PROMPT_S, SOUND_DBFS, PromptAudio, Skipped, read_prompt_folder, reference_text
from ..timeline import Timeline
from .observer import TurnObserver
from .record import TurnRecord

log = logging.getLogger(__name__)

FRAME_S = 0.02
PREMATURE_TOLERANCE_S = 0.05
LEAD_SILENCE_S = 0.5
SIDECAR_SLACK_S = 0.05  # a sidecar time may pass the clip's end by this much (rounding, a VAD window)
NOTHING_HEARD = "no turn was heard in the audio (no speech detected), so no reply is coming"


@dataclass
class Prompt:
    """One prompt WAV with its optional sidecars."""

    path: Path
    audio: np.ndarray
    speech_end_s: float
    reference: str | None = None
    end_source: str = "estimated"
    kind: str = ""  # the sidecar's "kind" (complete, leadin, two, unfinished, real, ...), else the folder's name
    cues: dict[str, float] = field(default_factory=dict)  # the sidecar's times (s): speech start/end, pause, interruption
    notes: list[str] = field(default_factory=list)  # what was done to the file (cut, truncated, one channel used)
    segments: list[tuple[float, float]] = field(default_factory=list)  # the sidecar's spoken parts (start, end) in s


def estimate_speech_end(audio: np.ndarray, rate: int, threshold_dbfs: float = SOUND_DBFS) -> float:
    """Seconds at which the last 20 ms window louder than ``threshold_dbfs`` ends."""
    span = loud_span(audio, rate, threshold_dbfs, FRAME_S)
    return span[1] / rate if span else 0.0


def load_prompts(directory: Path, rate: int, max_s: float = MAX_PROMPT_S, skipped: list[Skipped] | None = None) -> list[Prompt]:
    """Every audio file soundfile reads in ``directory`` (sorted), resampled to ``rate`` and cut at ``max_s``,
    with its sidecars. Skipped files are logged with their reason (see :mod:`speechlm_demo.prompt_files`)
    and added to ``skipped`` if given."""
    found, passed_over = read_prompt_folder(directory, rate, max_s)
    for item in passed_over:
        log.warning("skipped %s", item)
    if skipped is not None:
        skipped.extend(passed_over)
    prompts = []
    for item in found:
        try:
            prompts.append(prompt_from(item, rate, directory.name))
        except ValueError as exc:
            log.warning("skipped %s: %s", item.path.name, exc)
            passed_over.append(Skipped(item.path.name, str(exc)))
            if skipped is not None:
                skipped.append(passed_over[-1])
    if not prompts:
        why = "; ".join(str(item) for item in passed_over) or "the folder holds no audio files"
        raise FileNotFoundError(f"no usable prompt audio files in {directory} ({why})")
    return prompts


def prompt_from(item: PromptAudio, rate: int, kind: str) -> Prompt:
    """A prompt file read at ``rate`` with its sidecars: ``NAME.json`` (``speech_end_s``, ``kind``, cue times in
    s, ``segments``) and ``NAME.txt`` (the reference text, UTF-8). Without a sidecar's ``speech_end_s`` the end of
    speech is estimated; without its ``kind``, ``kind`` is used. ValueError, naming the sidecar (and the field),
    when a sidecar cannot be read or holds a time that is not in the clip (see :func:`sidecar_time`)."""
    audio = item.audio
    meta, text = item.path.with_suffix(".json"), item.path.with_suffix(".txt")
    span = loud_span(audio, rate, SOUND_DBFS, FRAME_S)
    end, source = (span[1] / rate if span else 0.0), "estimated"
    cues = {"speech_start_s": span[0] / rate if span else 0.0}
    segments: list[tuple[float, float]] = []
    if meta.exists():
        sidecar = _read_sidecar(meta)
        length_s = item.length_s if item.length_s is not None else len(audio) / rate
        kind = str(sidecar.get("kind", kind))
        if "speech_end_s" in sidecar:  # else the estimate stands; a prompt cut at max_s ends where it was cut
            end, source = min(sidecar_time(meta.name, "speech_end_s", sidecar["speech_end_s"], length_s), len(audio) / rate), "sidecar"
        numbers = {k: v for k, v in sidecar.items() if k.endswith("_s") and isinstance(v, int | float) and not isinstance(v, bool)}
        cues |= {k: sidecar_time(meta.name, k, v, length_s) for k, v in numbers.items()}
        segments = _segments(meta.name, sidecar.get("segments") or [], length_s)
    cues["speech_end_s"] = end
    return Prompt(item.path, audio, end, reference_text(text), source, kind, cues, item.notes, segments)


def sidecar_time(sidecar: str, name: str, value: object, length_s: float) -> float:
    """``value`` as seconds into a clip of ``length_s``: ValueError naming ``sidecar`` and the field ``name``
    unless it is a finite number from 0 to the clip's length (plus :data:`SIDECAR_SLACK_S`)."""
    try:
        if isinstance(value, bool):
            raise TypeError
        seconds = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"sidecar {sidecar}: {name} {value!r} is not a number of seconds") from None
    if not math.isfinite(seconds) or not 0.0 <= seconds <= length_s + SIDECAR_SLACK_S:
        raise ValueError(f"sidecar {sidecar}: {name} {value!r} is not a time in the clip (0 to {length_s:.2f} s)")
    return seconds


def _read_sidecar(meta: Path) -> dict[str, object]:
    """The JSON object in ``meta``; ValueError naming it when it cannot be read or is not an object."""
    try:
        sidecar = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"unreadable sidecar {meta.name}: {exc!r}") from None
    if isinstance(sidecar, dict):
        return sidecar
    raise ValueError(f"unreadable sidecar {meta.name}: a JSON {type(sidecar).__name__}, not an object")


def _segments(sidecar: str, value: object, length_s: float) -> list[tuple[float, float]]:
    """The sidecar's ``segments``: [start, end] pairs of times in the clip, start <= end; else ValueError."""
    if not isinstance(value, list) or not all(isinstance(pair, list) and len(pair) == 2 for pair in value):
        raise ValueError(f"sidecar {sidecar}: segments {value!r} is not a list of [start, end] pairs")
    segments = []
    for index, pair in enumerate(value):
        start, stop = (sidecar_time(sidecar, f"segments[{index}]", t, length_s) for t in pair)
        if start > stop:
            raise ValueError(f"sidecar {sidecar}: segments[{index}] {pair!r} ends before it starts")
        segments.append((start, stop))
    return segments


@dataclass
class Feed:
    """What feeding one prompt produced: the turn records, every event with its arrival time, the reference end."""

    records: list[TurnRecord]
    arrivals: list[tuple[float, Event]]
    true_end: float
    fed_s: list[float] = field(default_factory=list)  # per arrival: prompt seconds pushed before the frame in progress

    @property
    def events(self) -> list[Event]:
        """The events alone, in arrival order."""
        return [event for _, event in self.arrivals]

    @property
    def premature(self) -> list[TurnRecord]:
        """Turns committed before the reference end of speech: cuts."""
        return [r for r in self.records if is_premature(r.timeline, self.true_end)]

    @property
    def answered(self) -> TurnRecord | None:
        """The first turn that ended after the reference end of speech: the answer to the prompt."""
        return next((r for r in self.records if not is_premature(r.timeline, self.true_end)), None)


def is_premature(timeline: Timeline, true_end: float) -> bool:
    """Whether the turn was committed before the true end of speech (``true_end``, clock seconds): a cut."""
    detected = timeline.marks.get("turn_detected")
    return detected is not None and detected < true_end - PREMATURE_TOLERANCE_S


def run_prompt(
    engine: Engine, prompt: Prompt, rate: int, tail_s: float, timeout_s: float, options: SessionOptions | None = None
) -> Feed:
    """Feed one prompt in real time, then silence, until a turn ends after the reference end of speech (or time
    runs out). A 20 ms frame is pushed when its last sample has been "spoken", as a microphone delivers it, so
    the clock of the feed and the prompt's ``speech_end_s`` agree. The one observer makes the turn records and
    marks ``reference_speech_end`` on them: when the frame holding the last sample of speech was actually handed
    over (a busy machine may hand it over late; that lateness is the feeder's, not the engine's)."""
    arrivals: list[tuple[float, Event]] = []
    fed_s: list[float] = []
    pushed = [0]
    ended = threading.Event()
    started = time.monotonic()
    end_sample = int((LEAD_SILENCE_S + prompt.speech_end_s) * rate)
    observer = TurnObserver.for_engine(engine, keep_audio=True)
    observer.reference_end = started + end_sample / rate

    def collect(event: Event) -> None:
        now = time.monotonic()
        arrivals.append((now, event))
        fed_s.append(pushed[0] / rate - LEAD_SILENCE_S)
        record = observer.observe(event, now)
        if record is not None and not is_premature(record.timeline, observer.reference_end or now):
            ended.set()

    session = engine.open_session(options or SessionOptions(), collect)
    lead = np.zeros(int(LEAD_SILENCE_S * rate), np.float32)
    audio = np.concatenate([lead, prompt.audio, np.zeros(int(tail_s * rate), np.float32)])
    frame = int(rate * FRAME_S)
    try:
        for index, piece in enumerate(chunks(audio, frame)):
            last = index * frame + len(piece)
            time.sleep(max(0.0, started + last / rate - time.monotonic()))
            if index * frame < end_sample <= last:
                observer.reference_end = time.monotonic() - (last - end_sample) / rate
            session.push_audio(piece)
            pushed[0] += len(piece)
            if ended.is_set():
                break
        session.flush()
        deadline = time.monotonic() + timeout_s
        while not ended.is_set() and session.reply_pending() and time.monotonic() < deadline:
            ended.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        if not ended.is_set() and not session.reply_pending() and not observer.records:
            arrivals.append((time.monotonic(), ErrorEvent(NOTHING_HEARD)))  # why there is no turn, without the wait
            fed_s.append(pushed[0] / rate - LEAD_SILENCE_S)
        return Feed(list(observer.records), list(arrivals), observer.reference_end or started, list(fed_s))
    finally:
        session.close()
