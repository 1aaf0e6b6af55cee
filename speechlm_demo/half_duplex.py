"""Half-duplex sessions: turn detection + speculative replies + barge-in + hung-engine watchdog.

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
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from .audio import SILENT_DBFS, rms_dbfs
from .endpointing import is_complete
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
from .reply_runner import CANCEL_GRACE_S, ReplyRunner
from .timeline import Timeline
from .turns import (
    BlipIgnored,
    Decision,
    PauseDetected,
    PauseLikely,
    PauseUnlikely,
    SpeechResumed,
    SpeechStarted,
    TurnDetector,
    TurnEnded,
    TurnSettings,
)
from .vad import EnergyVAD, VoiceActivityModel

if TYPE_CHECKING:
    from .engines.base import HalfDuplexEngine

log = logging.getLogger(__name__)

_NO_AUDIO = np.zeros(0, np.float32)


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
        self.settings = TurnSettings.from_defaults(engine.entry.defaults)
        self.judge_transcripts = engine.setting("endpointing", "silence") == "transcript"
        rate = engine.entry.sample_rates.input
        self.detector = TurnDetector(vad or EnergyVAD(sample_rate=rate, window=rate // 32), self.settings)
        self.clock = clock
        self.history = engine.new_history(options)
        self.turns_committed = 0
        self._reply: _Reply | None = None
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
        assert isinstance(decision, TurnEnded)
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
        self._reply = _Reply(self, turn, end, confirmed)
        if committed:
            self._reply.commit("silence")
        self.runner.submit(self._reply)

    def committed(self, reply: _Reply) -> None:
        """Called by a reply when it commits: it is now turn number N."""
        self.turns_committed = reply.turn.turn_id


class _Reply:
    """One (possibly speculative) reply in a worker thread."""

    def __init__(self, session: HalfDuplexSession, turn: UserTurn, end_sample: int, confirmed: bool) -> None:
        self.session = session
        self.turn = turn
        self.timeline = turn.timeline
        self.end_sample = end_sample
        self.voice_end = end_sample  # where the user's voice ended, as seen when this reply started
        self.confirmed = confirmed  # the VAD heard the pause (False while started at a likely pause)
        self.history = list(session.history)  # the session's memory changes only if this reply commits
        self.committed = False
        self.judged_complete = False  # the user's words read as a finished request
        self.playback_end = 0.0
        self._held: list[Event] = []
        self._generating = True
        self._result: tuple[str, str] | None = None  # (status, detail) once generation is over
        self._ended = False
        self.reported = False  # its TurnEnd has been emitted
        self._lock = threading.RLock()
        self._thread = threading.Thread(target=self._run, name=f"reply-{turn.turn_id}", daemon=True)
        self._watchdog: threading.Timer | None = None

    @property
    def held_complete(self) -> bool:
        """Judged complete but held back: the pause is not confirmed yet, or voice was heard in it."""
        return self.judged_complete and not self.committed and not self.cancelled

    @property
    def cancelled(self) -> bool:
        """Dropped or interrupted."""
        return self.turn.cancel.is_set()

    def covers(self, end_sample: int) -> bool:
        """Whether this reply answers the speech up to ``end_sample`` (no speech came after)."""
        return self.end_sample == end_sample

    def start(self) -> None:
        """Run the engine in the background."""
        self._thread.start()

    def busy(self, now: float) -> bool:
        """Generating, or its audio still playing."""
        return self._generating or now < self.playback_end

    def confirm(self, end_sample: int) -> None:
        """The VAD heard the pause this reply started early for (it may commit from now on)."""
        with self._lock:
            self.confirmed = True
            self.end_sample = end_sample

    def commit_if_ready(self) -> None:
        """Commit a reply judged complete once the pause is confirmed, free of voice and long enough."""
        with self._lock:
            if not self.held_complete or not self.confirmed:
                return
            detector = self.session.detector
            silence_ms = (detector.samples_seen - self.voice_end) * 1000 / detector.rate
            if not detector.blip_pending and silence_ms >= self.session.settings.min_commit_silence_ms:
                self.commit("transcript")

    def commit(self, reason: str) -> None:
        """The user's turn is over (``reason``: silence | transcript): release held events."""
        with self._lock:
            if self.committed or self.cancelled:
                return
            self.committed = True
            self.timeline.mark("turn_detected")
            self.timeline.extra["committed_by"] = reason
            self.session.committed(self)
            held, self._held = self._held, []
            for event in held:
                self._forward(event)
            if self._result is not None:
                self.session.history[:] = self.history
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
            self.turn.cancel.set()
            self._held.clear()
            if self.committed:
                self._finish("interrupted", "")

    def _timed_out(self) -> None:
        with self._lock:
            if self._ended or self.cancelled:
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
            self._generating = False
            self._result = (status, detail)
            self.turn.audio = _NO_AUDIO  # the engine is done with it; a long turn's audio is not kept
            if self.cancelled:
                self._held.clear()
            if self.committed:
                self.session.history[:] = self.history
                self._finish(status, detail)

    def _handle(self, event: Event) -> None:
        if isinstance(event, Mark):
            self.timeline.mark(event.name, event.t)
        user_words = isinstance(event, TextOut) and event.role == "user" and event.final
        if user_words:
            self.timeline.extra["user_text"] = event.text  # type: ignore[union-attr]
        with self._lock:
            if self.cancelled:
                return
            if not self.committed:
                self._held.append(event)
                if user_words and self.session.judge_transcripts:
                    self._judge(event.text)  # type: ignore[union-attr]
                return
            self._forward(event)

    def _judge(self, transcript: str) -> None:
        """Commit a finished request as soon as :meth:`commit_if_ready` allows; drop an unfinished one. An
        unconfirmed pause holds the reply until the VAD confirms it (commit) or the level comes back (drop);
        so does voice being heard in the pause (not yet a resumption), until it proves a blip (commit) or a
        resumption (drop)."""
        complete = is_complete(transcript)
        self.judged_complete = complete
        self.timeline.extra["judged_complete"] = complete  # for the record (turn reports, tests)
        if not complete:
            self.turn.cancel.set()  # mid-thought: free the CPU; a long silence starts afresh
        else:
            self.commit_if_ready()

    def _forward(self, event: Event) -> None:
        """Emit one event of a committed reply, stamping audio marks as audio leaves."""
        if isinstance(event, AudioOut) and len(event.pcm):
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
        self.session.emit(event)

    def _finish(self, status: str, detail: str) -> None:
        if self._ended:
            return
        self._ended = True
        if self._watchdog is not None:
            self._watchdog.cancel()
        self.timeline.status = status
        if detail:
            self.timeline.detail = detail
        self.session.emit(TurnEnd(self.timeline))
        self.reported = True
