"""Turn-taking for half-duplex engines: VAD end-of-turn, bounded turns, barge-in, hung engines.

:class:`TurnDetector` turns a stream of samples into "speech started" / "turn ended" decisions with
sample positions. :class:`HalfDuplexSession` puts it in front of a :class:`HalfDuplexEngine`, runs each
reply in a worker thread, stamps the timeline, cancels a reply when the user barges in and fails a
turn whose engine raises or stops answering, so the session always keeps listening.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .audio import rms_dbfs
from .engines.base import (
    AudioOut,
    Emit,
    EngineSession,
    ErrorEvent,
    Event,
    Interrupt,
    Mark,
    SessionOptions,
    TextOut,
    TurnEnd,
    UserTurn,
)
from .timeline import Timeline
from .vad import EnergyVAD, VoiceActivityModel

if TYPE_CHECKING:
    from .engines.base import HalfDuplexEngine

log = logging.getLogger(__name__)

SILENT_DBFS = -60.0


@dataclass(frozen=True)
class TurnSettings:
    """Knobs of the detector (catalogue ``defaults`` may override them per engine)."""

    threshold: float = 0.5
    min_speech_ms: float = 120.0
    end_silence_ms: float = 400.0
    pre_roll_ms: float = 300.0
    max_turn_s: float = 30.0
    reply_timeout_s: float = 30.0

    @classmethod
    def from_defaults(cls, defaults: dict) -> TurnSettings:
        """Pick the known keys out of a catalogue ``defaults`` mapping."""
        known = {k: float(v) for k, v in defaults.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass(frozen=True)
class SpeechStarted:
    """Speech began at sample ``start``."""

    start: int


@dataclass(frozen=True)
class TurnEnded:
    """A turn spanning samples [start, end) was decided at sample ``decided``."""

    start: int
    end: int
    decided: int
    audio: np.ndarray
    truncated: bool = False


class TurnDetector:
    """Window-by-window speech / silence state machine with a hang-over."""

    def __init__(self, vad: VoiceActivityModel, settings: TurnSettings) -> None:
        self.vad = vad
        self.settings = settings
        self.rate = vad.sample_rate
        self.samples_seen = 0
        self._pending = np.zeros(0, dtype=np.float32)
        self._history = np.zeros(0, dtype=np.float32)  # audio since (turn start - pre-roll)
        self._history_start = 0
        self._in_turn = False
        self._speech_run = 0
        self._turn_start = 0
        self._last_voiced_end = 0

    def _ms(self, samples: int) -> float:
        return samples * 1000.0 / self.rate

    def push(self, pcm: np.ndarray) -> Iterator[SpeechStarted | TurnEnded]:
        """Feed samples at the VAD's rate; yield decisions as they are made."""
        self._pending = np.concatenate([self._pending, pcm.astype(np.float32, copy=False)])
        window = self.vad.window
        while len(self._pending) >= window:
            chunk, self._pending = self._pending[:window], self._pending[window:]
            yield from self._step(chunk)

    def _step(self, chunk: np.ndarray) -> Iterator[SpeechStarted | TurnEnded]:
        start = self.samples_seen
        self.samples_seen += len(chunk)
        self._remember(chunk, start)
        voiced = self.vad.speech_probability(chunk) >= self.settings.threshold
        if not self._in_turn:
            self._speech_run = self._speech_run + len(chunk) if voiced else 0
            if self._ms(self._speech_run) >= self.settings.min_speech_ms:
                self._in_turn = True
                self._turn_start = self.samples_seen - self._speech_run
                self._last_voiced_end = self.samples_seen
                yield SpeechStarted(self._turn_start)
            return
        if voiced:
            self._last_voiced_end = self.samples_seen
        silence_ms = self._ms(self.samples_seen - self._last_voiced_end)
        too_long = self._ms(self.samples_seen - self._turn_start) >= self.settings.max_turn_s * 1000
        if silence_ms >= self.settings.end_silence_ms or too_long:
            yield self._end_turn(truncated=too_long and silence_ms < self.settings.end_silence_ms)

    def _remember(self, chunk: np.ndarray, start: int) -> None:
        self._history = np.concatenate([self._history, chunk])
        if not self._in_turn:
            keep = int(self.settings.pre_roll_ms * self.rate / 1000) + self.vad.window * 8
            if len(self._history) > keep:
                drop = len(self._history) - keep
                self._history = self._history[drop:]
                self._history_start += drop

    def _end_turn(self, truncated: bool) -> TurnEnded:
        pre_roll = int(self.settings.pre_roll_ms * self.rate / 1000)
        first = max(self._history_start, self._turn_start - pre_roll)
        tail = int(0.1 * self.rate)
        last = min(self.samples_seen, self._last_voiced_end + tail)
        audio = self._history[first - self._history_start : last - self._history_start].copy()
        ended = TurnEnded(self._turn_start, self._last_voiced_end, self.samples_seen, audio, truncated)
        self._in_turn = False
        self._speech_run = 0
        self._history = self._history[self.samples_seen - self._history_start :]
        self._history_start = self.samples_seen
        return ended

    def finish(self) -> TurnEnded | None:
        """End of input: close the turn in progress, if any."""
        return self._end_turn(truncated=False) if self._in_turn else None


class HalfDuplexSession(EngineSession):
    """Turn-taking + reply worker around a :class:`HalfDuplexEngine`."""

    engine: HalfDuplexEngine

    def __init__(
        self,
        engine: HalfDuplexEngine,
        options: SessionOptions,
        emit: Emit,
        *,
        vad: VoiceActivityModel | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(engine, options, emit)
        self.settings = TurnSettings.from_defaults(engine.entry.defaults)
        rate = engine.entry.sample_rates.input
        self.detector = TurnDetector(vad or EnergyVAD(sample_rate=rate, window=rate // 32), self.settings)
        self.clock = clock
        self.history = engine.new_history(options)
        self._turns = 0
        self._active: _Reply | None = None
        self._lock = threading.Lock()
        self._closed = False

    def push_audio(self, pcm: np.ndarray) -> None:
        """Run turn detection; start or cancel replies."""
        if self._closed:
            return
        now = self.clock()
        for decision in self.detector.push(pcm):
            self._on_decision(decision, now)

    def flush(self) -> None:
        """End of input: answer the turn in progress."""
        ended = self.detector.finish()
        if ended is not None:
            self._on_decision(ended, self.clock())

    def _time_of(self, sample: int, now: float) -> float:
        return now - (self.detector.samples_seen - sample) / self.detector.rate

    def _on_decision(self, decision: SpeechStarted | TurnEnded, now: float) -> None:
        if isinstance(decision, SpeechStarted):
            active = self._active
            if active is not None and active.busy(now):
                log.info("barge-in during turn %d", active.turn.turn_id)
                active.interrupt()
                self.emit(Interrupt(active.turn.turn_id))
            return
        self._turns += 1
        timeline = Timeline(turn_id=self._turns, engine_id=self.engine.id, clock=self.clock)
        timeline.mark("user_speech_start", self._time_of(decision.start, now))
        timeline.mark("user_speech_end", self._time_of(decision.end, now))
        timeline.mark("turn_detected", now)
        if decision.truncated:
            message = f"Your turn was cut at {self.settings.max_turn_s:g} s (the longest turn this engine takes)."
            self.emit(ErrorEvent(message))
        turn = UserTurn(self._turns, decision.audio, self.detector.rate, timeline)
        previous = self._active
        if previous is not None:
            previous.interrupt()
        self._active = _Reply(self, turn)
        self._active.start()

    def close(self) -> None:
        """Cancel any reply; later audio is ignored."""
        self._closed = True
        if self._active is not None:
            self._active.interrupt()


class _Reply:
    """One reply in its worker thread, with a watchdog against hung engines."""

    def __init__(self, session: HalfDuplexSession, turn: UserTurn) -> None:
        self.session = session
        self.turn = turn
        self.timeline = turn.timeline
        self._done = threading.Event()
        self._ended = False
        self._lock = threading.Lock()
        self.playback_end = 0.0
        self._thread = threading.Thread(target=self._run, name=f"reply-{turn.turn_id}", daemon=True)
        self._watchdog = threading.Timer(session.settings.reply_timeout_s, self._timed_out)
        self._watchdog.daemon = True

    def start(self) -> None:
        """Run the engine in the background."""
        self._thread.start()
        self._watchdog.start()

    def busy(self, now: float) -> bool:
        """Still generating, or its audio still playing."""
        return not self._done.is_set() or now < self.playback_end

    def interrupt(self) -> None:
        """Barge-in or a newer turn: stop and drop whatever is not played yet."""
        if not self.turn.cancel.is_set():
            self.turn.cancel.set()
            self._finish("interrupted", "")

    def _timed_out(self) -> None:
        if self._done.is_set():
            return
        seconds = self.session.settings.reply_timeout_s
        message = f"{self.session.engine.entry.label} did not finish within {seconds:g} s; turn abandoned."
        self.turn.cancel.set()
        self._forward(ErrorEvent(message), force=True)
        self._finish("failed", message)

    def _forward(self, event: Event, force: bool = False) -> None:
        if force or not self.turn.cancel.is_set():
            self.session.emit(event)

    def _run(self) -> None:
        engine = self.session.engine
        status, detail = "ok", ""
        try:
            events = engine.respond(self.turn, self.session.history, self.session.options)
            for event in events:
                if self.turn.cancel.is_set():
                    break
                self._handle(event)
        except Exception as exc:  # noqa: BLE001 - any engine failure ends the turn, not the session
            log.exception("engine %s failed on turn %d", engine.id, self.turn.turn_id)
            status, detail = "failed", f"{engine.entry.label} failed: {exc}"
            self._forward(ErrorEvent(detail))
        finally:
            self._done.set()
            self._watchdog.cancel()
            self._finish(status, detail)

    def _handle(self, event: Event) -> None:
        if isinstance(event, Mark):
            self.timeline.mark(event.name, event.t)
        elif isinstance(event, AudioOut) and len(event.pcm):
            now = self.timeline.clock()
            if "first_audio_out" not in self.timeline.marks and rms_dbfs(event.pcm) > SILENT_DBFS:
                self.timeline.mark("first_audio_out", now)
            if "first_audio_out" in self.timeline.marks:
                self.playback_end = max(self.playback_end, now) + event.duration_s
                self.timeline.mark("last_audio_out", self.playback_end)
        elif isinstance(event, ErrorEvent):
            self.timeline.detail = event.message
        elif isinstance(event, TextOut) and event.role == "agent" and event.final:
            self.timeline.extra["reply_text"] = (self.timeline.extra.get("reply_text", "") + " " + event.text).strip()
        elif isinstance(event, TextOut) and event.role == "user" and event.final:
            self.timeline.extra["user_text"] = event.text
        self._forward(event)

    def _finish(self, status: str, detail: str) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        self.timeline.status = status
        if detail:
            self.timeline.detail = detail
        self.session.emit(TurnEnd(self.timeline))
