"""Per-user-turn timelines for a full-duplex stream, where nothing waits for the user's turn to end.

Our turn detector runs on the user's audio as it arrives, only to *measure*: it finds each user turn and
its end of speech (``user_speech_end``; ``turn_detected`` is when the detector decided). A turn's timeline is
emitted as :class:`TurnEnd` when the agent has been silent for ``agent_silence_ms`` after the last audible
sample of its reply (audible agent audio is found in a short history, because the agent may answer before our
detector has decided; when each chunk plays and what of it is audible is measured once, by the session's
:class:`~speechlm_demo.measure.playback.PlaybackClock`, and read here), when
the user starts the next turn, ``reply_timeout_s`` after the turn (with or without a reply: an agent that never
stops talking still gets its timeline), or at :meth:`DuplexTurnTracker.finish`. The reply's marks and words are
the observer's (:mod:`speechlm_demo.measure.observer`); a turn the agent never answered is ``no_reply``.
Each timeline's ``extra`` carries the per-frame step times, the real-time factor and dropped frames since the
previous one.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..engines.base import Emit, TurnEnd
from ..measure.playback import Played
from ..timeline import Timeline
from .detector import SpeechStarted, TurnClosed, TurnDetector, TurnSettings
from .voice_activity import EnergyVAD, VoiceActivityModel

AGENT_HISTORY_S = 10.0


@dataclass(eq=False)
class _OpenTurn:
    timeline: Timeline
    last_voiced: float | None = None  # when the agent's last audible sample after the turn is heard


class DuplexTurnTracker:
    """Thread-safe: user audio comes from the caller's thread, agent audio from a worker or network thread."""

    def __init__(
        self,
        engine_id: str,
        settings: TurnSettings,
        emit: Emit,
        *,
        vad: VoiceActivityModel | None = None,
        agent_silence_ms: float = 800.0,
        clock: Callable[[], float] = time.monotonic,
        sample_rate: int = 24_000,
        frame_s: float = 0.08,
    ) -> None:
        self.engine_id = engine_id
        self.sample_rate = sample_rate
        self.frame_s = frame_s
        self.settings = settings
        self.emit = emit
        self.clock = clock
        self.agent_silence_s = agent_silence_ms / 1000.0
        self.detector = TurnDetector(vad or EnergyVAD.for_rate(sample_rate), settings)
        self.turns = 0
        self._open: list[_OpenTurn] = []
        self._agent: deque[tuple[float, float]] = deque()  # first / last audible instant of agent chunks
        self._steps: list[float] = []
        self._dropped = 0
        self._lock = threading.Lock()

    def user_audio(self, pcm: np.ndarray) -> None:
        """The user's audio (mono, at :attr:`sample_rate`) as it arrives."""
        now = self.clock()
        with self._lock:
            done: list[_OpenTurn] = []
            for decision in self.detector.push(pcm):
                if isinstance(decision, SpeechStarted):
                    done += self._close_all()
                elif isinstance(decision, TurnClosed):
                    self._open_turn(decision, now)
            done += self._sweep(now)
        self._emit(done)

    def agent_audio(self, played: Played) -> None:
        """An agent chunk as the session placed it on its playback clock."""
        now = self.clock()
        with self._lock:
            if played.audible is not None:
                self._agent.append(played.audible)
                for turn in self._open:
                    if turn.timeline.marks["user_speech_end"] <= played.audible[0]:
                        turn.last_voiced = played.audible[1]
            while self._agent and self._agent[0][1] < now - AGENT_HISTORY_S:
                self._agent.popleft()
            done = self._sweep(now)
        self._emit(done)

    def step(self, seconds: float) -> None:
        """Processing time of one 80 ms frame."""
        with self._lock:
            self._steps.append(seconds)

    def dropped(self, count: int = 1) -> None:
        """Frames dropped because the session fell behind."""
        with self._lock:
            self._dropped += count

    def finish(self) -> None:
        """End of input: close the user's turn in progress and emit every open timeline."""
        now = self.clock()
        with self._lock:
            ended = self.detector.finish()
            if ended is not None:
                self._open_turn(ended, now)
            done = self._close_all()
        self._emit(done)

    def _time_of(self, sample: int, now: float) -> float:
        return now - (self.detector.samples_seen - sample) / self.detector.rate

    def _open_turn(self, ended: TurnClosed, now: float) -> None:
        self.turns += 1
        timeline = Timeline(turn_id=self.turns, engine_id=self.engine_id, clock=self.clock)
        timeline.mark("user_speech_start", self._time_of(ended.start, now))
        end = timeline.mark("user_speech_end", self._time_of(ended.end, now))
        timeline.mark("turn_detected", now)
        turn = _OpenTurn(timeline)
        voiced = [stop for start, stop in self._agent if start >= end]
        if voiced:
            turn.last_voiced = voiced[-1]
        self._open.append(turn)

    def _sweep(self, now: float) -> list[_OpenTurn]:
        done: list[_OpenTurn] = []
        kept: list[_OpenTurn] = []
        for turn in self._open:
            over = (turn.last_voiced is not None and now - turn.last_voiced >= self.agent_silence_s) or (
                now - turn.timeline.marks["turn_detected"] >= self.settings.reply_timeout_s
            )
            (done if over else kept).append(turn)
        self._open = kept
        return self._finalise(done)

    def _close_all(self) -> list[_OpenTurn]:
        done, self._open = self._open, []
        return self._finalise(done)

    def _finalise(self, done: list[_OpenTurn]) -> list[_OpenTurn]:
        if not done:
            return done
        steps, self._steps = np.asarray(self._steps) * 1000.0, []
        dropped, self._dropped = self._dropped, 0
        for turn in done:
            timeline = turn.timeline
            if turn.last_voiced is None:
                timeline.status, timeline.detail = "no_reply", "the agent did not speak after this turn"
            timeline.extra["dropped_frames"] = dropped
            if len(steps):
                timeline.extra.update(
                    frames=len(steps),
                    step_ms_mean=round(float(steps.mean()), 2),
                    step_ms_p95=round(float(np.percentile(steps, 95)), 2),
                    step_ms_max=round(float(steps.max()), 2),
                    rtf=round(float(steps.mean()) / (self.frame_s * 1000.0), 3),
                )
        return done

    def _emit(self, done: list[_OpenTurn]) -> None:
        for turn in done:
            self.emit(TurnEnd(turn.timeline))
