"""One (possibly speculative) reply of a half-duplex session, generated in a worker thread.

Its events are held back until the session commits it (:meth:`Reply.commit`); a reply dropped before
that leaves no trace, not even in the conversation history. A committed reply that the user interrupts
ends as "interrupted"; one that raises or hangs ends as "failed" with a message.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING

import numpy as np

from ..audio import SILENT_DBFS, rms_dbfs
from ..engines.base import AudioOut, ErrorEvent, Event, Mark, TextOut, TurnEnd, UserTurn
from .endpointing import is_complete

if TYPE_CHECKING:
    from .half_duplex import HalfDuplexSession

log = logging.getLogger(__name__)

_NO_AUDIO = np.zeros(0, np.float32)


class Reply:
    """One (possibly speculative) reply in a worker thread."""

    def __init__(self, session: HalfDuplexSession, turn: UserTurn, end_sample: int, confirmed: bool) -> None:
        self.session = session
        self.turn = turn
        self.timeline = turn.timeline
        self.end_sample = end_sample
        self.voice_end = end_sample  # where the user's voice ended, as seen when this reply started
        self.confirmed = confirmed  # the VAD heard the pause (False while started at a likely pause)
        self.history = list(session.history)  # the session's memory changes only if this reply commits
        self.history_before = list(session.history)
        self.superseded = False  # the user went on with the same turn: this exchange is not remembered
        self.committed = False
        self.judged_complete = False  # the user's words read as a finished request
        self.playback_end = 0.0
        self._audible = False  # audible audio has been forwarded (playback_end counts from then on)
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
            self.turn.cancel.set()
            self._held.clear()
            if self.committed:
                self._finish("interrupted", "")

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
                self._remember()
                self._finish(status, detail)

    def _handle(self, event: Event) -> None:
        if isinstance(event, Mark):
            self.timeline.mark(event.name, event.t)
        user_words = isinstance(event, TextOut) and event.role == "user" and event.final
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
        """Emit one event of a committed reply; keep track of when its audio stops playing (for barge-in)."""
        if isinstance(event, AudioOut) and len(event.pcm):
            now = self.timeline.clock()
            self._audible = self._audible or rms_dbfs(event.pcm) > SILENT_DBFS
            if self._audible:
                self.playback_end = max(self.playback_end, now) + event.duration_s
        elif isinstance(event, ErrorEvent):
            self.timeline.detail = event.message
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
