r"""One (possibly speculative) reply of a half-duplex session, generated in a worker thread.

A reply is an explicit state machine (:class:`Phase`)::

    LIKELY --(the VAD hears the pause)--> HELD --(strategy or long silence)--> COMMITTED --> ENDED
       \__________________________________/  \--(user goes on / words dangle)--> DROPPED

Its events are held back until it is COMMITTED; a DROPPED reply leaves no trace, not even in the
conversation history. Whether it may commit early is the session's end-of-turn strategy's call
(:mod:`.end_of_turn`), asked by :meth:`Reply.reconsider` whenever something changes: a frame of silence,
the engine's transcript, Smart Turn's verdict. A committed reply that the user interrupts ends as
"interrupted"; one that raises or hangs ends as "failed" with a message. Generation (the worker thread)
runs beside the phases: it may finish before or after the commit.
"""

from __future__ import annotations

import logging
import threading
import time
from enum import Enum
from typing import TYPE_CHECKING

import numpy as np

from ..audio import audible_span
from ..engines.base import AudioOut, ErrorEvent, Event, Interrupt, Mark, TextOut, TurnEnd, UserTurn
from .end_of_turn import Action, Evidence, Verdict
from .endpointing import asks, is_complete
from .lookback import lookback_verdict, words_verdict
from .turn_words import hear_turn

if TYPE_CHECKING:
    from .half_duplex import HalfDuplexSession

log = logging.getLogger(__name__)

_NO_AUDIO = np.zeros(0, np.float32)
WORDS_MARKS = ("asr_start", "asr_final")  # with listen_asr the turn layer's recogniser marks these, not the engine


class Phase(Enum):
    """Where a reply stands."""

    LIKELY = "likely"  # started at a likely pause; the VAD has not heard the pause yet
    HELD = "held"  # the pause is confirmed; events wait for the strategy or the long silence
    COMMITTED = "committed"  # the user's turn is over: events flow out
    ENDED = "ended"  # its TurnEnd is out (ok, failed or interrupted)
    DROPPED = "dropped"  # speculative and dropped: no trace


NEXT = {
    Phase.LIKELY: frozenset({Phase.HELD, Phase.COMMITTED, Phase.DROPPED}),
    Phase.HELD: frozenset({Phase.COMMITTED, Phase.DROPPED}),
    Phase.COMMITTED: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
    Phase.DROPPED: frozenset(),
}


class Reply:
    """One (possibly speculative) reply in a worker thread."""

    def __init__(self, session: HalfDuplexSession, turn: UserTurn, end_sample: int, confirmed: bool) -> None:
        self.session = session
        self.turn = turn
        self.timeline = turn.timeline
        self.end_sample = end_sample
        self.voice_end = end_sample  # where the user's voice ended, as seen when this reply started
        self.phase = Phase.HELD if confirmed else Phase.LIKELY
        self.history = list(session.history)  # the session's memory changes only if this reply commits
        self.history_before = list(session.history)
        self.superseded = False  # the user went on with the same turn: this exchange is not remembered
        self.transcript = Verdict.UNKNOWN  # whether the user's words read as a finished request
        self.lookback: Verdict | None = None  # the second hearing's verdict (None: not asked; see expect_lookback)
        self.audio = Verdict.UNKNOWN  # whether the turn's audio sounds finished (Smart Turn)
        self.audio_probability: float | None = None
        self.listening = False  # Smart Turn was asked about this reply's pause
        self.playback_end = 0.0
        self._audible = False  # audible audio has been forwarded (playback_end counts from then on)
        self._held: list[Event] = []
        self._result: tuple[str, str] | None = None  # (status, detail) once generation is over
        self.reported = False  # its TurnEnd has been emitted
        self._words_pending = False  # the turn layer's recogniser has yet to report (see expect_words)
        self._deferred_finish: tuple[str, str] | None = None  # a finish that waits for those words
        self._lock = threading.RLock()
        self._thread = threading.Thread(target=self._run, name=f"reply-{turn.turn_id}", daemon=True)
        self._watchdog: threading.Timer | None = None

    def _enter(self, phase: Phase) -> None:
        if phase not in NEXT[self.phase]:
            raise RuntimeError(f"reply {self.turn.turn_id}: {self.phase.value} -> {phase.value} is not a transition")
        self.phase = phase

    @property
    def confirmed(self) -> bool:
        """The VAD heard the pause this reply started at."""
        return self.phase is not Phase.LIKELY

    @property
    def committed(self) -> bool:
        """Committed (playing, or ended after playing)."""
        return self.phase in (Phase.COMMITTED, Phase.ENDED)

    @property
    def cancelled(self) -> bool:
        """Dropped or interrupted."""
        return self.turn.cancel.is_set()

    @property
    def undecided(self) -> bool:
        """Neither committed nor dropped yet: the end-of-turn rules may still commit or drop it."""
        return self.phase in (Phase.LIKELY, Phase.HELD) and not self.cancelled

    def covers(self, end_sample: int) -> bool:
        """Whether this reply answers the speech up to ``end_sample`` (no speech came after)."""
        return self.end_sample == end_sample

    def start(self) -> None:
        """Run the engine in the background."""
        self._thread.start()

    def busy(self, now: float) -> bool:
        """Generating, or its audio still playing."""
        return self._result is None or now < self.playback_end

    def confirm(self, end_sample: int) -> None:
        """The VAD heard the pause this reply started early for (it may commit from now on)."""
        with self._lock:
            if self.phase is Phase.LIKELY:
                self._enter(Phase.HELD)
            self.end_sample = end_sample

    def silence_ms(self) -> float:
        """Silence heard since the user's voice ended, or since the last voice heard in the pause (a blip too
        short to resume the turn: a weak syllable the VAD half heard is one as well as a click)."""
        return self.session.detector.quiet_ms(self.voice_end)

    def reconsider(self) -> None:
        """Ask the session's end-of-turn strategy about this held reply; commit or drop it if it says so."""
        with self._lock:
            if not self.undecided:
                return
            words = words_verdict(self.transcript, self.lookback)
            if words is Verdict.UNSURE and self.transcript is Verdict.DONE:
                self.timeline.extra["lookback_held"] = True  # the look-back, and only it, held finished words
            evidence = Evidence(
                confirmed=self.confirmed,
                silence_ms=self.silence_ms(),
                blip_pending=self.session.detector.blip_pending,
                min_commit_silence_ms=self.session.settings.min_commit_silence_ms,
                transcript=words,
                audio=self.audio,
                audio_probability=self.audio_probability,
            )
            action = self.session.strategy.decide(evidence)
            if action is Action.COMMIT:
                self.commit(self.session.strategy.name)
            elif action is Action.DROP:
                self.drop()  # mid-thought: free the CPU; a long silence starts afresh

    def listen(self, heard: np.ndarray) -> None:
        """Smart Turn's verdict on the audio ``heard`` up to now (in the session's listener thread, off the
        audio path), then reconsider."""
        model = self.session.smart_turn
        if model is None or not self.undecided:
            return
        started = time.monotonic()
        try:
            probability = model.probability(heard, self.turn.sample_rate)
        except Exception:  # noqa: BLE001 - a failing model leaves the decision to the other rules
            log.exception("Smart Turn failed on turn %d", self.turn.turn_id)
            return
        with self._lock:
            self.audio_probability = probability
            self.audio = Verdict.DONE if probability > model.threshold else Verdict.NOT_DONE
            self.timeline.extra["smart_turn_p"] = round(probability, 3)
            self.timeline.extra["smart_turn_ms"] = round((time.monotonic() - started) * 1000, 1)
        self.reconsider()

    def expect_words(self) -> None:
        """The turn layer's recogniser will hear this reply's audio: its ``TurnEnd`` waits for the words, so the
        user's line is never missing from, nor after, the turn it belongs to."""
        self._words_pending = True

    def hear_words(self, audio: np.ndarray) -> None:
        """The turn layer's recogniser on this reply's audio (``listen_asr``; in the session's words thread): the
        words are judged as an engine's would be, and become the user's line of the transcript (first among the
        held events). Nothing heard leaves the verdict open; a failing recogniser leaves the silence rule."""
        heard = None
        try:
            recogniser = self.session.words
            if recogniser is not None and not self.cancelled:
                self.timeline.mark("asr_start")
                heard = hear_turn(recogniser, audio, self.turn.sample_rate, self.turn.cancel)
                self.timeline.mark("asr_final")
        except Exception:  # noqa: BLE001 - the words only speed the decision up; the silence rule still ends the turn
            log.exception("the turn layer's recogniser failed on turn %d", self.turn.turn_id)
        with self._lock:
            self._words_pending = False
            if heard is not None and heard.text.strip() and not self.cancelled and self.phase is not Phase.ENDED:
                words = TextOut(heard.text, role="user", confidence=heard.confidence)
                if self.committed:
                    self._forward(words)
                else:
                    self._held.insert(0, words)
                    self._judge(heard.text, heard.confidence)
            if self._deferred_finish is not None:
                self._finish(*self._deferred_finish)

    def expect_lookback(self) -> None:
        """A second hearing without the turn's last moments will come (:mod:`.lookback`): finished words wait
        for it."""
        self.lookback = Verdict.UNKNOWN

    def hear_lookback(self, audio: np.ndarray) -> None:
        """The second hearing (in the session's look-back thread), then reconsider; a failure is no veto."""
        heard = None
        started = time.monotonic()
        try:
            recogniser = self.session.lookback_words
            if recogniser is not None and len(audio) and self.undecided:
                heard = hear_turn(recogniser, audio, self.turn.sample_rate, self.turn.cancel)
        except Exception:  # noqa: BLE001 - the first hearing's verdict stands
            log.exception("the look-back hearing failed on turn %d", self.turn.turn_id)
        with self._lock:
            if not self.undecided:
                return  # committed by the long silence meanwhile (its record is out), or dropped
            self.lookback = lookback_verdict(heard.text) if heard is not None else Verdict.DONE
            if heard is not None:
                self.timeline.extra["lookback_words"] = heard.text.strip()
                self.timeline.extra["lookback_dangles"] = self.lookback is Verdict.NOT_DONE
                self.timeline.extra["lookback_hear_ms"] = round((time.monotonic() - started) * 1000, 1)
        self.reconsider()

    def drop(self) -> None:
        """A speculative reply the user's turn went past: stop it, without a trace."""
        with self._lock:
            if self.phase in (Phase.LIKELY, Phase.HELD):
                self._enter(Phase.DROPPED)
            self.turn.cancel.set()

    def commit(self, reason: str) -> None:
        """The user's turn is over (``reason``: silence or the strategy's name): release held events."""
        with self._lock:
            if not self.undecided:
                return
            self._enter(Phase.COMMITTED)
            self.timeline.mark("turn_detected")
            self.timeline.extra["committed_by"] = reason
            self.session.committed(self)
            held, self._held = self._held, []
            for event in held:
                self._forward(event)
            if self._result is not None:
                self._remember()
                self._finish(*self._result)
            else:
                self._watchdog = threading.Timer(self.session.settings.reply_timeout_s, self._timed_out)
                self._watchdog.daemon = True
                self._watchdog.start()

    def interrupt(self) -> None:
        """Barge-in or a newer turn: stop; a committed reply ends as "interrupted", a speculative one vanishes."""
        with self._lock:
            if self.cancelled:
                return
            self._held.clear()
            if self.committed:
                self.turn.cancel.set()
                self._finish("interrupted", "")
            else:
                self.drop()

    def barge_in(self, now: float) -> None:
        """The user spoke: a committed reply still busy is flushed (``Interrupt``) and stopped, a speculative one
        dropped; under the lock :meth:`_handle` forwards under, so nothing of it follows the ``Interrupt``."""
        with self._lock:
            if self.committed and not self.busy(now):
                return
            if self.committed:
                log.info("barge-in during turn %d", self.turn.turn_id)
                self.session.emit(Interrupt(self.turn.turn_id))
            self.interrupt()

    def supersede(self) -> None:
        """The user went on with the same turn after this reply was committed (an early cut): the next reply
        hears the whole turn from its start, so this exchange is taken back out of the history; else the
        first half would be heard twice, in the audio and in the history."""
        with self._lock:
            self.superseded = True
            self.session.history[:] = self.history_before
            if not self.cancelled:
                self.turn.cancel.set()
                self._finish("interrupted", "you went on speaking; the whole turn is answered next")

    def _remember(self) -> None:
        if not self.superseded:
            self.session.history[:] = self.history

    def _timed_out(self) -> None:
        with self._lock:
            if self.phase is not Phase.COMMITTED or self.cancelled:
                return
            seconds = self.session.settings.reply_timeout_s
            message = f"{self.session.engine.entry.label} did not finish within {seconds:g} s; turn abandoned."
            self.turn.cancel.set()
            self.session.emit(ErrorEvent(message))
            self._finish("failed", message)

    def _run(self) -> None:
        try:
            self._generate()
        finally:
            self.session.runner.done(self)  # the next reply may start: this worker is over

    def _generate(self) -> None:
        engine = self.session.engine
        status, detail = "ok", ""
        try:
            events = engine.respond(self.turn, self.history, self.session.options)
            try:
                for event in events:
                    if self.cancelled:
                        break
                    self._handle(event)
            finally:
                close = getattr(events, "close", None)
                if close is not None:
                    close()  # run the engine's cleanup (e.g. history update) before we read the history
        except Exception as exc:  # noqa: BLE001 - any engine failure ends the turn, not the session
            log.exception("engine %s failed on turn %d", engine.id, self.turn.turn_id)
            status, detail = "failed", f"{engine.entry.label} failed: {exc}"
            self._handle(ErrorEvent(detail))
        with self._lock:
            self._result = (status, detail)
            self.turn.audio = _NO_AUDIO  # the engine is done with it; a long turn's audio is not kept
            if self.cancelled:
                self._held.clear()
            if self.committed:
                self._remember()
                self._finish(status, detail)

    def _handle(self, event: Event) -> None:
        own_words = self.session.words is not None  # listen_asr: the turn layer hears the user (see hear_words)
        if isinstance(event, Mark) and not (own_words and event.name in WORDS_MARKS):
            self.timeline.mark(event.name, event.t)
        user_words = isinstance(event, TextOut) and event.role == "user" and event.final
        if user_words and own_words:
            return  # listen_asr's words are the user's line (a fallback cascade reports its own as well)
        with self._lock:
            if self.cancelled:
                return
            if not self.committed:
                self._held.append(event)
                if user_words:
                    self._judge(event.text, event.confidence)  # type: ignore[union-attr]
                return
            self._forward(event)

    def _judge(self, transcript: str, confidence: float | None) -> None:
        """Record whether the words read finished (and were heard clearly), then let the strategy decide."""
        settings = self.session.settings
        complete = is_complete(transcript)
        if not complete:
            self.transcript = Verdict.NOT_DONE
        elif settings.hold_statements and not asks(transcript):
            self.transcript = Verdict.STATEMENT
        elif confidence is not None and confidence < settings.min_transcript_confidence:
            self.transcript = Verdict.UNSURE
        else:
            self.transcript = Verdict.DONE
        self.timeline.extra["judged_complete"] = complete  # for the record (turn reports, tests)
        if confidence is not None:
            self.timeline.extra["transcript_confidence"] = confidence
        self.reconsider()

    def _forward(self, event: Event) -> None:
        """Emit one event of a committed reply; keep track of when its audio stops playing (for barge-in)."""
        if isinstance(event, AudioOut) and len(event.pcm):
            now = self.timeline.clock()
            if not self._audible:  # by the observer's threshold: barge-in only over reply audio that is heard
                threshold = self.session.settings.audible_dbfs
                self._audible = audible_span(event.pcm, event.sample_rate, threshold) is not None
            if self._audible:
                self.playback_end = max(self.playback_end, now) + event.duration_s
        elif isinstance(event, ErrorEvent):
            self.timeline.detail = event.message
        self.session.emit(event)

    def _finish(self, status: str, detail: str) -> None:
        if self.phase is not Phase.COMMITTED:
            return
        if self._words_pending and not self.cancelled:  # the user's line first (see expect_words)
            if self._deferred_finish is None:  # the first finish wins, as it does without words to wait for
                self._deferred_finish = (status, detail)
            return
        self._enter(Phase.ENDED)
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.timeline.status = status
        if detail:
            self.timeline.detail = detail
        self.session.emit(TurnEnd(self.timeline))
        self.reported = True
