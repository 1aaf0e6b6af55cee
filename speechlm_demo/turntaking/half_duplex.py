"""Half-duplex engines and sessions: turn detection + speculative replies + barge-in + hung-engine watchdog.

At a short pause the engine starts answering *speculatively*: its events are held back. (With
``early_pause_db`` it starts at a *likely* pause, before the VAD confirms it; a likely pause withdrawn
drops that reply.) The reply is *committed* (``turn_detected`` is marked and the held events flow out) when

* the end-of-turn strategy named by ``endpointing`` says so (:mod:`.end_of_turn`: ``transcript``, the
  words read finished (the engine's, or for an engine that reports none the turn layer's ``listen_asr``,
  :mod:`.turn_words`); ``smart-turn``, Smart Turn v3 hears a finished turn once the pause is
  ``smart_turn_silence_ms`` long; ``combined``, both), the VAD has confirmed the pause, no voice is being
  heard in it and the user has been silent for ``min_commit_silence_ms``, or
* the silence reaches ``end_silence_ms`` (every engine; the only rule for ``endpointing: silence``).

If the user goes on speaking before the commit, or the strategy drops it (the words dangle), the
speculative reply is dropped without a trace (its history changes too). The reply itself is a small state
machine (:mod:`.speculative_reply`).
After the commit, user speech is barge-in: playback is flushed (``Interrupt``) and generation stops. If the user
goes on with the *same* turn after a reply was committed early (a lead-in that read as a finished sentence),
that reply's exchange is taken back out of the history: the next reply hears the whole turn once.
An engine that raises or stops answering fails its turn with a message; the session keeps listening.
"""

from __future__ import annotations

import logging
import time
from abc import abstractmethod
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from ..engines.base import (
    Emit,
    Engine,
    EngineSession,
    EngineSettings,
    ErrorEvent,
    Event,
    Progress,
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
from .end_of_turn import STRATEGIES, strategy_for
from .reply_runner import CANCEL_GRACE_S, ReplyRunner
from .speculative_reply import Reply
from .turn_words import check_listen_asr, shared_recogniser
from .voice_activity import EnergyVAD, VoiceActivityModel

if TYPE_CHECKING:
    from ..engines.cascade.asr import ASR
    from .smart_turn import SmartTurn

log = logging.getLogger(__name__)


class HalfDuplexSettings(TurnSettings):
    """Settings every half-duplex engine has: the turn detector's knobs and how a turn may end early."""

    endpointing: Literal["silence", "transcript", "smart-turn", "combined"] = "silence"
    hold_statements: bool = Field(
        True, description="transcript/combined: a finished statement that asks nothing waits for end_silence_ms"
    )
    min_transcript_confidence: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="transcript/combined: finished words the recogniser is less sure of wait for end_silence_ms (0: off)",
    )
    smart_turn_silence_ms: float = Field(200.0, ge=0.0, description="silence after which Smart Turn hears the pause")
    smart_turn_alone_above: float = Field(
        1.0, ge=0.0, le=1.0, description="combined: Smart Turn at least this sure commits without the transcript"
    )
    listen_asr: dict[str, Any] | None = Field(
        None,
        description="transcript/combined for an engine that reports no words of the user: the turn layer's own "
        "recogniser (the cascade's asr mapping), see turntaking.turn_words",
    )
    lookback_ms: float = Field(
        0.0,
        ge=0.0,
        le=500.0,
        description="transcript/combined: finished words commit early only if the turn heard again without its last "
        "lookback_ms of voice does not dangle (0: off); see turntaking.lookback",
    )

    reply_timeout_s: float = Field(
        45.0, gt=0.0, description="a reply not finished by then is abandoned (longer than the engine's own waits)"
    )

    engine_reports_words: ClassVar[bool] = False  # the engine yields the user's words (TextOut, role "user")

    @field_validator("listen_asr")
    @classmethod
    def _recogniser_known(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        return None if value is None else check_listen_asr(value)

    @model_validator(mode="after")
    def _words_for_the_rule(self) -> HalfDuplexSettings:
        reads_words = STRATEGIES[self.endpointing].uses_words
        if self.listen_asr is not None and self.engine_reports_words:
            raise ValueError("listen_asr: this engine reports the user's words itself; remove listen_asr")
        if self.listen_asr is not None and not reads_words:
            raise ValueError(f"listen_asr: endpointing {self.endpointing!r} reads no words; use transcript or combined, or remove it")
        if reads_words and not self.engine_reports_words and self.listen_asr is None:
            raise ValueError(
                f"endpointing {self.endpointing!r} reads the user's words and this engine reports none: add listen_asr "
                "(e.g. {kind: faster-whisper, model: offline, language: en}) or use silence / smart-turn"
            )
        if self.lookback_ms and not reads_words:
            raise ValueError(f"lookback_ms: endpointing {self.endpointing!r} reads no words; use transcript or combined, or set it to 0")
        if self.lookback_ms and not self.recogniser():
            raise ValueError("lookback_ms: the turn layer has no recogniser to hear with; add listen_asr or set it to 0")
        return self

    def waits_within_a_reply(self) -> dict[str, float]:
        """The engine's own waits (seconds, by setting name) that bound how long a reply may stall: each must be
        shorter than ``reply_timeout_s``, or the reply is abandoned first and the reason the wait gives ("did not
        start within ...", "nothing for 30 s") is never seen (a wait between events starts after the last one, often
        after the commit, so an equal one is too long). Server rows have ``connect_timeout_s``,
        ``first_byte_timeout_s``, ``read_timeout_s``; an engine with other waits (a server stage) adds them."""
        names = ("connect_timeout_s", "first_byte_timeout_s", "read_timeout_s")
        return {name: getattr(self, name) for name in names if hasattr(self, name)}

    @model_validator(mode="after")
    def _waits_end_before_the_reply_is_abandoned(self) -> HalfDuplexSettings:
        for name, seconds in self.waits_within_a_reply().items():
            if seconds >= self.reply_timeout_s:
                raise ValueError(
                    f"{name} ({seconds:g} s) is not shorter than reply_timeout_s ({self.reply_timeout_s:g} s): the reply "
                    f"would be abandoned before that wait ends and says why; raise reply_timeout_s or lower {name}"
                )
        return self

    def recogniser(self) -> dict[str, Any] | None:
        """The recogniser the turn layer may use itself (``listen_asr``; an engine with its own ASR stage names
        that one): the one ``lookback_ms`` hears with."""
        return self.listen_asr

    def lookback_recogniser(self, device: str) -> ASR | None:
        """The process's recogniser for the second hearing (its own instance), or None with ``lookback_ms`` 0."""
        return shared_recogniser(self.recogniser() or {}, device, role="lookback") if self.lookback_ms else None


class HalfDuplexEngine(Engine):
    """An engine that answers whole user turns; turn-taking is done for it."""

    Settings: ClassVar[type[EngineSettings]] = HalfDuplexSettings
    settings: HalfDuplexSettings

    def new_history(self, options: SessionOptions) -> list[dict[str, str]]:
        """The conversation memory of a new session (chat messages)."""
        return []

    def load(self, progress: Progress | None = None) -> None:
        """Load the engine, Smart Turn when its ``endpointing`` listens to the audio and the turn layer's
        recogniser when it has ``listen_asr`` (so that opening the first session waits for neither)."""
        super().load(progress)
        if strategy_for(self.settings.endpointing).uses_audio:
            from .smart_turn import shared_model

            shared_model()
        if self.settings.listen_asr is not None:
            shared_recogniser(self.settings.listen_asr, self.device)
        self.settings.lookback_recogniser(self.device)

    def make_vad(self) -> VoiceActivityModel:
        """The voice activity model of a new session (default: the energy VAD at the input rate)."""
        rate = self.entry.sample_rates.input
        return EnergyVAD.for_rate(rate)

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
        self.strategy = strategy_for(self.settings.endpointing, self.settings.smart_turn_alone_above)
        self.smart_turn: SmartTurn | None = None
        if self.strategy.uses_audio:
            from .smart_turn import shared_model  # onnxruntime + the model, only when asked for

            self.smart_turn = shared_model()
        self._listener = ThreadPoolExecutor(1, thread_name_prefix="smart-turn") if self.smart_turn else None
        self.words: ASR | None = None  # the turn layer's recogniser (listen_asr), for engines that report no words
        if self.settings.listen_asr is not None:
            self.words = shared_recogniser(self.settings.listen_asr, engine.device)
        self._words_pool = ThreadPoolExecutor(1, thread_name_prefix="turn-words") if self.words else None
        self.lookback_words = self.settings.lookback_recogniser(engine.device)  # the second hearing's (lookback_ms)
        self._lookback_pool = ThreadPoolExecutor(1, thread_name_prefix="turn-lookback") if self.lookback_words else None
        self._heard: deque[np.ndarray] = deque()  # the last 8 s of input: what Smart Turn hears
        self._heard_len = 0
        rate = engine.entry.sample_rates.input
        self.detector = TurnDetector(vad or EnergyVAD.for_rate(rate), self.settings)
        self.clock = clock
        self.history = engine.new_history(options)
        self.turns_committed = 0
        self._reply: Reply | None = None
        self.runner = ReplyRunner(min(CANCEL_GRACE_S, self.settings.reply_timeout_s), clock)
        self._closed = False
        self._handlers: dict[type, Callable[[Any, float], None]] = {
            SpeechStarted: self._on_voice,
            SpeechResumed: self._on_voice,
            BlipIgnored: lambda decision, now: None,  # a held reply is reconsidered after the decisions
            PauseLikely: self._on_likely_pause,
            PauseUnlikely: self._on_pause_withdrawn,
            PauseDetected: self._on_pause,
            TurnClosed: self._on_turn_closed,
        }

    def _push(self, pcm: np.ndarray) -> None:
        """Run turn detection; start, commit, drop or interrupt replies."""
        if self._closed:
            return
        now = self.clock()
        if self._listener is not None:
            self._remember(pcm)
        for decision in self.detector.push(pcm):
            self._on_decision(decision, now)
        reply = self._reply
        if reply is not None:
            if self._listener is not None and not reply.listening and reply.silence_ms() >= self.settings.smart_turn_silence_ms:
                reply.listening = True
                self._listener.submit(reply.listen, np.concatenate(self._heard))
            reply.reconsider()

    def _remember(self, pcm: np.ndarray) -> None:
        self._heard.append(np.asarray(pcm, dtype=np.float32))
        self._heard_len += len(pcm)
        keep = 8 * self.detector.rate
        while self._heard_len - len(self._heard[0]) >= keep:
            self._heard_len -= len(self._heard.popleft())

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
        if self._listener is not None:
            self._listener.shutdown(wait=False, cancel_futures=True)
        if self._words_pool is not None:  # queued hearings still run: each ends at once and releases its reply
            self._words_pool.shutdown(wait=False)
        if self._lookback_pool is not None:
            self._lookback_pool.shutdown(wait=False, cancel_futures=True)

    def _time_of(self, sample: int, now: float) -> float:
        return now - (self.detector.samples_seen - sample) / self.detector.rate

    def _on_decision(self, decision: Decision, now: float) -> None:
        """One detector decision, to its own small handler."""
        self._handlers[type(decision)](decision, now)

    def _on_voice(self, decision: SpeechStarted | SpeechResumed, now: float) -> None:
        reply = self._reply
        if reply is not None:
            reply.barge_in(now)
        if isinstance(decision, SpeechResumed) and reply is not None and reply.committed:
            reply.supersede()  # an early cut: the next reply answers the whole turn, heard once

    def _on_likely_pause(self, decision: PauseLikely, now: float) -> None:
        self._start_reply(decision.start, decision.end, decision.audio, now, committed=False, confirmed=False, heard=decision)

    def _on_pause_withdrawn(self, decision: PauseUnlikely, now: float) -> None:
        if self._reply is not None and not self._reply.confirmed:
            self._reply.drop()

    def _on_pause(self, decision: PauseDetected, now: float) -> None:
        reply = self._reply
        if reply is not None and not reply.confirmed and not reply.cancelled:
            reply.confirm(decision.end)
        else:
            self._start_reply(decision.start, decision.end, decision.audio, now, committed=False, heard=decision)

    def _on_turn_closed(self, decision: TurnClosed, now: float) -> None:
        if decision.truncated:
            self.emit(ErrorEvent(f"Your turn was cut at {self.settings.max_turn_s:g} s (the longest turn this engine takes)."))
        reply = self._reply
        if reply is not None and reply.covers(decision.end) and not reply.cancelled:
            reply.commit("silence")
        else:
            self._start_reply(decision.start, decision.end, decision.audio, now, committed=True)

    def _start_reply(
        self,
        start: int,
        end: int,
        audio: np.ndarray,
        now: float,
        *,
        committed: bool,
        confirmed: bool = True,
        heard: PauseLikely | PauseDetected | None = None,
    ) -> None:
        """A new reply to the turn so far; ``heard`` (a pause) is heard again for ``lookback_ms`` when that is on."""
        if self._reply is not None:
            self._reply.interrupt()
        timeline = Timeline(turn_id=self.turns_committed + 1, engine_id=self.engine.id, clock=self.clock)
        timeline.mark("user_speech_start", self._time_of(start, now))
        timeline.mark("user_speech_end", self._time_of(end, now))
        timeline.mark("reply_started", now)
        turn = UserTurn(self.turns_committed + 1, audio, self.detector.rate, timeline)
        self._reply = Reply(self, turn, end, confirmed)
        self._look_back(self._reply, heard)  # first: words that read finished must find it expected
        if self._words_pool is not None:
            self._reply.expect_words()  # before the submit: the words may be in before the next line runs
            try:
                self._words_pool.submit(self._reply.hear_words, audio)
            except RuntimeError:  # the session closed meanwhile: this reply is over, and waits for no words
                self._reply.interrupt()
                self._reply.hear_words(audio)
        if committed:
            self._reply.commit("silence")
        self.runner.submit(self._reply)

    def _look_back(self, reply: Reply, pause: PauseLikely | PauseDetected | None) -> None:
        """Hear ``reply``'s turn again without its last ``lookback_ms`` of voice (see :mod:`.lookback`)."""
        if self._lookback_pool is None or pause is None:
            return
        reply.expect_lookback()  # before the submit: the hearing may be in before the next line runs
        try:
            self._lookback_pool.submit(reply.hear_lookback, pause.trimmed(self.detector.rate, self.settings.lookback_ms))
        except RuntimeError:  # the session closed meanwhile: the reply is interrupted, and waits for nothing
            reply.interrupt()

    def committed(self, reply: Reply) -> None:
        """Called by a reply when it commits: it is now turn number N."""
        self.turns_committed = reply.turn.turn_id
