"""Full-duplex engines and sessions: the engine only steps frames; framing, backlog, drops, words and turns are here.

A full-duplex engine hears the user all the time, also while it speaks, and answers whenever it likes. Its
session subclasses :class:`FullDuplexSession` and implements :meth:`~FullDuplexSession.step` (one input frame of
``frame_size`` samples at ``stream_rate``, Moshi's ``LMGen.step`` shape), publishing what the frame produced
with :meth:`~FullDuplexSession.agent_audio` and :meth:`~FullDuplexSession.agent_text`. The base turns any input
into frames, queues them in a small drop-oldest queue (a session behind real time drops and reports frames
instead of building a backlog), runs ``step`` in a worker thread, assembles words, and feeds the per-user-turn
tracker (:mod:`.duplex_turns`), so every user turn ends with a :class:`~speechlm_demo.engines.base.TurnEnd`:
a full-duplex engine cannot forget to end a turn.
"""

from __future__ import annotations

import logging
import threading
import time
from abc import abstractmethod
from typing import ClassVar

import numpy as np
from pydantic import Field

from ..engines.base import (
    AudioOut,
    Emit,
    Engine,
    EngineSession,
    EngineSettings,
    ErrorEvent,
    Interrupt,
    SessionOptions,
    TextOut,
)
from ..measure.playback import PlaybackClock, Played
from .detector import TurnSettings
from .duplex_stream import DropReporter, FrameQueue, InputFramer, WordAssembler
from .duplex_turns import DuplexTurnTracker

log = logging.getLogger(__name__)

JOIN_S = 10.0


class FullDuplexSettings(TurnSettings):
    """Settings every full-duplex engine has: the turn knobs (to measure user turns), the reply's end, the queue."""

    agent_silence_ms: float = Field(800.0, gt=0.0, description="agent silence that ends its reply to a turn")
    max_backlog_frames: int = Field(3, ge=1, description="input frames queued before the oldest is dropped")


class FullDuplexEngine(Engine):
    """An engine that listens and speaks at once; its session class implements the per-frame step."""

    Settings: ClassVar[type[EngineSettings]] = FullDuplexSettings
    settings: FullDuplexSettings
    session_class: ClassVar[type[FullDuplexSession]]
    stream_rate: ClassVar[int] = 24_000  # the rate of the frames given to step()
    frame_size: ClassVar[int] = 1_920  # samples per step

    def check_ready(self) -> None:
        """Raise :class:`~speechlm_demo.engines.base.EngineError` if a session cannot start now."""

    def open_session(self, options: SessionOptions, emit: Emit) -> FullDuplexSession:
        """A running session of :attr:`session_class`."""
        self.check_ready()
        session = self.session_class(self, options, emit)
        session.start()
        return session


class FullDuplexSession(EngineSession):
    """Framing, backlog, drop reports, words and per-user-turn timelines around an engine's :meth:`step`."""

    engine: FullDuplexEngine
    time_steps: ClassVar[bool] = True  # whether step() is the model's work (timed for the real-time factor)

    def __init__(self, engine: FullDuplexEngine, options: SessionOptions, emit: Emit) -> None:
        super().__init__(engine, options, emit)
        self.settings: FullDuplexSettings = engine.settings_for(options)
        self.rate = engine.stream_rate
        self.frame_s = engine.frame_size / engine.stream_rate
        self.framer = InputFramer(engine.frame_size)
        self.frames: FrameQueue[np.ndarray] = FrameQueue(self.settings.max_backlog_frames)
        self.drops = DropReporter(engine.entry.label, frame_ms=self.frame_s * 1000)
        self.words = WordAssembler()
        self.tracker = DuplexTurnTracker(
            engine.id, self.settings, emit, agent_silence_ms=self.settings.agent_silence_ms, sample_rate=self.rate,
            frame_s=self.frame_s,
        )
        self.playback = PlaybackClock(self.settings.audible_dbfs)  # the one place agent audio is timed
        self._playback_lock = threading.Lock()
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._worker = threading.Thread(target=self._work, name=f"duplex-{engine.id}", daemon=True)

    @property
    def clean_sample_rate(self) -> int:
        """Pushed audio is resampled once, by the input guard, straight to the engine's stream rate."""
        return self.engine.stream_rate

    # --- what an engine implements -------------------------------------------------------------------------

    def begin(self) -> None:
        """In the worker thread, before the first frame (take the model, reset its state). Raise to fail."""

    @abstractmethod
    def step(self, frame: np.ndarray) -> None:
        """One input frame (``frame_size`` float32 samples at ``stream_rate``); publish what it produced."""

    def end(self) -> None:
        """In the worker thread, after the last frame, also after a failure."""

    def accepting(self) -> bool:
        """Whether input frames are wanted now (False, e.g., while reconnecting: they are discarded)."""
        return True

    def drain(self, deadline: float) -> None:
        """At :meth:`flush`, after the queue is empty: wait (until ``deadline``) for output still under way."""

    def stopping(self) -> None:
        """At :meth:`close`, before the worker is joined (cancel network work)."""

    def describe_failure(self, exc: Exception) -> str:
        """The user's message for an exception of :meth:`begin` or :meth:`step`."""
        return f"{self.engine.entry.label} failed and this conversation was stopped: {exc}"

    # --- what an engine calls --------------------------------------------------------------------------------

    def agent_audio(self, pcm: np.ndarray) -> Played:
        """Reply audio (mono float32 at ``stream_rate``): placed on :attr:`playback` once, the turn tracker reads
        that, and out. Returns where it plays."""
        with self._playback_lock:
            played = self.playback.place(pcm, self.rate, self.tracker.clock())
        self.tracker.agent_audio(played)
        self.emit(AudioOut(pcm, self.rate))
        return played

    def interrupt(self) -> float:
        """The user barged in: playback is flushed (:class:`Interrupt` out). Returns when."""
        with self._playback_lock:
            now = self.tracker.clock()
            self.playback.interrupt(now)
        self.emit(Interrupt(self.tracker.turns))
        return now

    def agent_text(self, piece: str | None) -> None:
        """A text piece (``" hel"``, ``"lo"``); None when a frame passed without text (a word may end)."""
        self._say(self.words.piece(piece) if piece else self.words.idle())

    def report_drop(self, count: int = 1) -> None:
        """Frames dropped because the session fell behind real time (counted, reported at most every 5 s)."""
        self.tracker.dropped(count)
        message = self.drops.dropped(count)
        if message:
            log.warning(message)
            self.emit(ErrorEvent(message))

    def fail(self, message: str) -> None:
        """The session cannot go on: say so and close the turns in progress."""
        log.error(message)
        self._stop.set()
        self.frames.clear()
        self.ready.set()
        self.emit(ErrorEvent(message, fatal=True))
        self.tracker.finish()

    @property
    def stopped(self) -> bool:
        """Closed or failed."""
        return self._stop.is_set()

    # --- the session seam ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the worker (done by :meth:`FullDuplexEngine.open_session`)."""
        self._worker.start()

    def _push(self, pcm: np.ndarray) -> None:
        """Frame clean input audio at ``stream_rate`` (see :meth:`EngineSession.push_audio`) for the model."""
        if self._stop.is_set():
            return
        frames = self.framer.push(pcm)
        self.tracker.user_audio(pcm)
        if not self.accepting():
            return
        for frame in frames:
            if self.frames.put(frame):
                self.report_drop()

    def flush(self, timeout: float = JOIN_S) -> None:
        """End of input: step what is queued, wait for its output, then close the turns in progress."""
        last = self.framer.flush()
        if last is not None and not self._stop.is_set() and self.accepting() and self.frames.put(last):
            self.report_drop()
        self.frames.join(timeout)
        self.drain(time.monotonic() + timeout)
        self._say(self.words.flush())
        self.tracker.finish()

    def close(self) -> None:
        """Stop the worker; nothing more is stepped or emitted."""
        self._stop.set()
        self.frames.clear()
        self.stopping()
        if self._worker.is_alive() and threading.current_thread() is not self._worker:
            self._worker.join(timeout=JOIN_S)

    def _say(self, word: str | None) -> None:
        if word:
            self.emit(TextOut(word, role="agent"))

    def _work(self) -> None:
        try:
            self.begin()
            self.ready.set()
            while not self._stop.is_set():
                frame = self.frames.get(timeout=0.1)
                if frame is None:
                    continue
                try:
                    started = time.perf_counter()
                    self.step(frame)
                    if self.time_steps:
                        self.tracker.step(time.perf_counter() - started)
                finally:
                    self.frames.task_done()
        except Exception as exc:  # noqa: BLE001 - any failure ends this session with a message, not the app
            log.exception("%s session failed", self.engine.id)
            self.fail(self.describe_failure(exc))
        finally:
            self.end()
