"""Half-duplex engines and sessions: turn detection + speculative replies + barge-in + hung-engine watchdog.

At a short pause the engine starts answering *speculatively*: its events are held back. (With
``early_pause_db`` it starts at a *likely* pause, before the VAD confirms it; a likely pause withdrawn
drops that reply.) The reply is *committed* (``turn_detected`` is marked and the held events flow out) when

* the engine reports the user's words, the completeness judgement accepts them
  (``defaults.endpointing: transcript``), the VAD has confirmed the pause, no voice is being heard in it
  (else once that voice proves a blip too short to be a resumption) and the user has been silent for
  ``min_commit_silence_ms`` (a floor under the commit: a fast ASR must not end a turn at a gap between
  two words), or
* the silence reaches ``end_silence_ms`` (every engine; the only rule for ``endpointing: silence``).

If the user goes on speaking before the commit, or the words heard are judged unfinished, the
speculative reply is dropped without a trace (its history changes too).
After the commit, user speech is barge-in: playback is flushed (``Interrupt``) and generation stops.
An engine that raises or stops answering fails its turn with a message; the session keeps listening.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections.abc import Callable, Iterator
from typing import ClassVar, Literal

import numpy as np

from ..engines.base import (
    Emit,
    Engine,
    EngineSession,
    EngineSettings,
    ErrorEvent,
    Event,
    Interrupt,
    SessionOptions,
    UserTurn,
)
from ..timeline import Timeline
from .detector import (
    BlipIgnored,
    Decision,
    PauseDetected,
    PauseLikely,
    PauseUnlikely,
    SpeechResumed,
    SpeechStarted,
    TurnClosed,
    TurnDetector,
    TurnSettings,
)
from .reply_runner import CANCEL_GRACE_S, ReplyRunner
from .speculative_reply import Reply
from .voice_activity import EnergyVAD, VoiceActivityModel

log = logging.getLogger(__name__)


class HalfDuplexSettings(TurnSettings):
    """Settings every half-duplex engine has: the turn detector's knobs and how a turn may end early."""

    endpointing: Literal["silence", "transcript"] = "silence"


class HalfDuplexEngine(Engine):
    """An engine that answers whole user turns; turn-taking is done for it."""

    Settings: ClassVar[type[EngineSettings]] = HalfDuplexSettings
    settings: HalfDuplexSettings

    def new_history(self, options: SessionOptions) -> list[dict[str, str]]:
        """The conversation memory of a new session (chat messages)."""
        return []

    def make_vad(self) -> VoiceActivityModel:
        """The voice activity model of a new session (default: the energy VAD at the input rate)."""
        rate = self.entry.sample_rates.input
        return EnergyVAD(sample_rate=rate, window=rate // 32)

    @abstractmethod
    def respond(self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions) -> Iterator[Event]:
        """Answer ``turn``: yield events as they are produced; stop early if ``turn.cancel`` is set.

        Engines append to ``history`` what they want remembered. ``Mark`` events go into the turn's
        timeline; ``first_audio_out``/``last_audio_out`` are marked by the turn layer as audio leaves.
        """

    def open_session(self, options: SessionOptions, emit: Emit) -> EngineSession:
        """Wrap :meth:`respond` in the shared turn-taking layer, with :meth:`make_vad`'s VAD."""
        return HalfDuplexSession(self, options, emit, vad=self.make_vad())


class HalfDuplexSession(EngineSession):
    """Turn-taking and reply workers around a :class:`HalfDuplexEngine`."""

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
        self.settings = engine.settings
        self.judge_transcripts = engine.settings.endpointing == "transcript"
        rate = engine.entry.sample_rates.input
        self.detector = TurnDetector(vad or EnergyVAD(sample_rate=rate, window=rate // 32), self.settings)
        self.clock = clock
        self.history = engine.new_history(options)
        self.turns_committed = 0
        self._reply: Reply | None = None
        self.runner = ReplyRunner(min(CANCEL_GRACE_S, self.settings.reply_timeout_s), clock)
        self._closed = False

    def _push(self, pcm: np.ndarray) -> None:
        """Run turn detection; start, commit, drop or interrupt replies."""
        if self._closed:
            return
        now = self.clock()
        for decision in self.detector.push(pcm):
            self._on_decision(decision, now)
        if self._reply is not None:
            self._reply.commit_if_ready()

    def flush(self) -> None:
        """End of input: the turn in progress is over."""
        ended = self.detector.finish()
        if ended is not None:
            self._on_decision(ended, self.clock())

    def reply_pending(self) -> bool:
        """A turn is being heard, or the last reply is neither dropped nor reported as ended."""
        reply = self._reply
        if self.detector.in_turn:
            return True
        return reply is not None and not reply.reported and (reply.committed or not reply.cancelled)

    def close(self) -> None:
        """Cancel any reply; later audio is ignored."""
        self._closed = True
        self.runner.close()
        if self._reply is not None:
            self._reply.interrupt()

    def _time_of(self, sample: int, now: float) -> float:
        return now - (self.detector.samples_seen - sample) / self.detector.rate

    def _on_decision(self, decision: Decision, now: float) -> None:
        reply = self._reply
        if isinstance(decision, (SpeechStarted, SpeechResumed)):
            if reply is not None and (reply.busy(now) or not reply.committed):
                if reply.committed:
                    log.info("barge-in during turn %d", reply.turn.turn_id)
                    self.emit(Interrupt(reply.turn.turn_id))
                reply.interrupt()
            if isinstance(decision, SpeechResumed) and reply is not None and reply.committed:
                reply.supersede()  # an early cut: the next reply answers the whole turn, heard once
            return
        if isinstance(decision, BlipIgnored):
            return  # a held reply commits after the decisions (push_audio), the blip being over
        if isinstance(decision, PauseLikely):
            self._start_reply(decision.start, decision.end, decision.audio, now, committed=False, confirmed=False)
            return
        if isinstance(decision, PauseUnlikely):
            if reply is not None and not reply.confirmed:
                reply.interrupt()
            return
        if isinstance(decision, PauseDetected):
            if reply is not None and not reply.confirmed and not reply.cancelled:
                reply.confirm(decision.end)
            else:
                self._start_reply(decision.start, decision.end, decision.audio, now, committed=False)
            return
        assert isinstance(decision, TurnClosed)
        if decision.truncated:
            self.emit(ErrorEvent(f"Your turn was cut at {self.settings.max_turn_s:g} s (the longest turn this engine takes)."))
        if reply is not None and reply.covers(decision.end) and not reply.cancelled:
            reply.commit("silence")
        else:
            self._start_reply(decision.start, decision.end, decision.audio, now, committed=True)

    def _start_reply(
        self, start: int, end: int, audio: np.ndarray, now: float, *, committed: bool, confirmed: bool = True
    ) -> None:
        if self._reply is not None:
            self._reply.interrupt()
        timeline = Timeline(turn_id=self.turns_committed + 1, engine_id=self.engine.id, clock=self.clock)
        timeline.mark("user_speech_start", self._time_of(start, now))
        timeline.mark("user_speech_end", self._time_of(end, now))
        timeline.mark("reply_started", now)
        turn = UserTurn(self.turns_committed + 1, audio, self.detector.rate, timeline)
        self._reply = Reply(self, turn, end, confirmed)
        if committed:
            self._reply.commit("silence")
        self.runner.submit(self._reply)

    def committed(self, reply: Reply) -> None:
        """Called by a reply when it commits: it is now turn number N."""
        self.turns_committed = reply.turn.turn_id
