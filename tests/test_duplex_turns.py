"""Per-user-turn timelines of a full-duplex stream, on a simulated clock (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm_demo.engines.base import AudioOut, Event, TextOut, TurnEnd
from speechlm_demo.engines.moshi import FRAME_S, FRAME_SIZE, SAMPLE_RATE
from speechlm_demo.measure.observer import TurnObserver
from speechlm_demo.measure.playback import PlaybackClock
from speechlm_demo.turntaking.detector import TurnSettings
from speechlm_demo.turntaking.duplex_turns import DuplexTurnTracker


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def tone(n: int = FRAME_SIZE, level: float = 0.3) -> np.ndarray:
    return (level * np.sin(2 * np.pi * 220 * np.arange(n) / SAMPLE_RATE)).astype(np.float32)


def quiet(n: int = FRAME_SIZE) -> np.ndarray:
    return np.zeros(n, np.float32)


class Session:
    """A tracker and the one observer, as a full-duplex session wires them: agent audio is placed on the
    session's playback clock once, the tracker reads that, the observer gets the chunk."""

    def __init__(self, settings: TurnSettings, agent_silence_ms: float = 800.0) -> None:
        self.clock, self.events = Clock(), []
        self.observer = TurnObserver("moshi-test", clock=self.clock)
        self.playback = PlaybackClock()
        self.tracker = DuplexTurnTracker(
            "moshi-test", settings, self.emit, clock=self.clock, agent_silence_ms=agent_silence_ms
        )

    def emit(self, event: Event) -> None:
        self.events.append(event)
        self.observer.observe(event)

    def agent(self, pcm: np.ndarray) -> None:
        self.tracker.agent_audio(self.playback.place(pcm, SAMPLE_RATE, self.clock()))
        self.emit(AudioOut(pcm, SAMPLE_RATE))

    def ends(self) -> list[TurnEnd]:
        return [e for e in self.events if isinstance(e, TurnEnd)]


def simulate(user: list[bool], agent: list[bool], settings: TurnSettings, dropped_at: int = -1) -> list[TurnEnd]:
    """Feed 80 ms frames: True = loud. Returns the TurnEnd events, closing with finish()."""
    session = Session(settings)
    for index, (user_loud, agent_loud) in enumerate(zip(user, agent, strict=True)):
        session.clock.t += FRAME_S
        session.tracker.user_audio(tone() if user_loud else quiet())
        session.tracker.step(0.02)
        if index == dropped_at:
            session.tracker.dropped(2)
        session.agent(tone() if agent_loud else quiet())
    session.tracker.finish()
    return session.ends()


def frames(*spans: tuple[bool, float]) -> list[bool]:
    out: list[bool] = []
    for loud, seconds in spans:
        out += [loud] * round(seconds / FRAME_S)
    return out


def test_agent_reply_after_the_user_turn() -> None:
    user = frames((False, 0.48), (True, 0.96), (False, 2.4))
    agent = frames((False, 0.48 + 0.96 + 0.32), (True, 0.48), (False, 1.6))
    ends = simulate(user, agent, TurnSettings(end_silence_ms=400), dropped_at=3)
    assert len(ends) == 1
    timeline = ends[0].timeline
    assert timeline.status == "ok" and timeline.turn_id == 1
    assert timeline.between_ms("user_speech_start", "user_speech_end") == pytest.approx(960, abs=100)
    # Moshi answered (at +320 ms) before our detector decided (+400 ms): found by looking back.
    assert timeline.voice_to_voice_ms == pytest.approx(320, abs=90)
    assert timeline.marks["first_audio_out"] < timeline.marks["turn_detected"]
    assert timeline.between_ms("first_audio_out", "last_audio_out") == pytest.approx(480, abs=1)
    extra = timeline.extra
    assert extra["step_ms_mean"] == pytest.approx(20.0) and extra["rtf"] == pytest.approx(0.25)
    assert extra["dropped_frames"] == 2 and extra["frames"] > 20


def test_silent_agent_gives_no_reply_after_the_timeout() -> None:
    user = frames((True, 0.8), (False, 2.0))
    ends = simulate(user, [False] * len(user), TurnSettings(end_silence_ms=400, reply_timeout_s=1.0))
    assert [e.timeline.status for e in ends] == ["no_reply"]
    assert ends[0].timeline.voice_to_voice_ms is None


def test_an_agent_that_never_stops_talking_still_gets_its_timeline() -> None:
    user = frames((True, 0.8), (False, 4.0))
    agent = frames((False, 1.0), (True, 3.8))
    session = Session(TurnSettings(end_silence_ms=400, reply_timeout_s=1.5))
    closed_at = None
    for user_loud, agent_loud in zip(user, agent, strict=True):
        session.clock.t += FRAME_S
        session.tracker.user_audio(tone() if user_loud else quiet())
        session.agent(tone() if agent_loud else quiet())
        if session.ends() and closed_at is None:
            closed_at = session.clock.t
    assert closed_at is not None, "no timeline while the agent kept talking"
    (end,) = session.ends()
    assert end.timeline.status == "ok" and end.timeline.voice_to_voice_ms == pytest.approx(200, abs=90)
    assert closed_at - end.timeline.marks["turn_detected"] == pytest.approx(1.5, abs=0.1)


def test_next_user_turn_closes_the_previous_one_and_finish_closes_the_last() -> None:
    user = frames((True, 0.8), (False, 0.8), (True, 0.8), (False, 0.48))
    agent = frames((False, 1.04), (True, 0.16), (False, 1.68))
    ends = simulate(user, agent, TurnSettings(end_silence_ms=400))
    assert [e.timeline.turn_id for e in ends] == [1, 2]
    assert ends[0].timeline.status == "ok" and ends[1].timeline.status == "no_reply"


def test_agent_talking_over_the_user_is_not_a_reply_to_a_later_end() -> None:
    user = frames((True, 0.96), (False, 1.6))
    agent = frames((True, 0.48), (False, 2.08))  # backchannel during the user's speech, then silence
    ends = simulate(user, agent, TurnSettings(end_silence_ms=400, reply_timeout_s=1.0))
    assert ends[0].timeline.status == "no_reply"


def test_reply_text_is_what_the_agent_said_after_the_end_of_speech() -> None:
    session = Session(TurnSettings(end_silence_ms=160))
    for index, loud in enumerate(frames((True, 0.48), (False, 0.4))):
        session.clock.t += FRAME_S
        session.tracker.user_audio(tone() if loud else quiet())
        if index == 1:
            session.emit(TextOut("hmm", role="agent"))  # while the user speaks: not the reply
    session.emit(TextOut("hello", role="agent"))
    session.agent(tone())
    session.emit(TextOut("there", role="agent"))
    session.tracker.finish()
    (end,) = session.ends()
    (record,) = session.observer.records
    assert record.reply_text == "hello there" and "step_ms_mean" not in end.timeline.extra


def test_agent_silence_counts_from_the_last_audible_sample_the_observer_hears() -> None:
    session = Session(TurnSettings(end_silence_ms=160), agent_silence_ms=400)
    for loud in frames((True, 0.48), (False, 0.4)):
        session.clock.t += FRAME_S
        session.tracker.user_audio(tone() if loud else quiet())
    reply = np.concatenate([tone(SAMPLE_RATE // 10), quiet(SAMPLE_RATE)])  # 100 ms of voice, then 1 s of silence
    session.agent(reply)
    closed_at = None
    while closed_at is None and session.clock.t < 200.0:
        session.clock.t += 0.02
        session.tracker.user_audio(quiet(480))
        closed_at = session.clock.t if session.ends() else None
    (record,) = session.observer.records
    assert closed_at - record.timeline.marks["last_audio_out"] == pytest.approx(0.4, abs=0.03)


def test_many_turns_each_close_once_in_order() -> None:
    turns = 300
    user = frames(*[span for _ in range(turns) for span in ((True, 0.24), (False, 0.56))], (False, 1.0))
    agent = frames(*[span for _ in range(turns) for span in ((False, 0.48), (True, 0.16), (False, 0.16))], (False, 1.0))
    ends = simulate(user, agent, TurnSettings(end_silence_ms=240, min_speech_ms=80), dropped_at=-1)
    assert [e.timeline.turn_id for e in ends] == list(range(1, turns + 1))
    assert all(e.timeline.status == "ok" for e in ends)
