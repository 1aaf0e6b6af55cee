"""Fallback: a server engine's turns answered by another engine, marked as such everywhere."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from speechlm_demo.audio import chunks
from speechlm_demo.catalog import load_catalog
from speechlm_demo.compare import compare
from speechlm_demo.engines.base import AudioOut, ErrorEvent, Event, SessionOptions, TextOut, TurnEnd
from speechlm_demo.engines.fallback import PROBE_WAIT_S, Health
from speechlm_demo.engines.mini_omni.client import MiniOmniEngine
from speechlm_demo.engines.openai_realtime.half_duplex import RealtimeEngine
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.hardware import HostInfo
from speechlm_demo.measure.observer import TurnObserver
from speechlm_demo.votes.pairs import playable_sides
from tests.support.speech import espeak_available, speak
from tests.support.tcp_faults import silent_listener

from .conftest import client_entry, echo_fallback, speech, user_turn, with_echo_fallback
from .fake_mini_omni import FakeMiniOmni
from .fake_realtime import KEY, FakeRealtime
from .serving import FakeHTTPServer


def test_health_backs_off_doubling_and_recovers() -> None:
    now = [100.0]
    health = Health(2.0, 5.0, clock=lambda: now[0])
    assert health.up and health.due()
    health.failed("down")
    assert not health.due() and health.retry_at == 102.0
    now[0] = 102.0
    assert health.due()
    health.failed("still down")
    assert health.retry_at == 106.0
    health.failed("still down")
    assert health.retry_at == 107.0  # capped at 5 s
    health.succeeded()
    assert health.up and health.due()


def test_compare_marks_a_fallback_answer_and_blind_ab_never_plays_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    server = FakeHTTPServer(FakeRealtime().app)
    with server as url:
        entry = client_entry("gpt-realtime", "x.y:Z", (24_000, 24_000), url=url.replace("http", "ws") + "/v1/realtime", url_env="", fallback="echo", end_silence_ms=300)
        realtime = with_echo_fallback(RealtimeEngine(entry))
        realtime.load()
    turn = speech(1.0, 16_000)
    result = compare(realtime, echo_fallback(), turn, 16_000, timeout_s=10, tail_s=1.5)
    realtime.close()
    assert result.a.status == "fallback" and result.a.answered_by == "echo" and "unreachable" in result.a.message
    assert len(result.a.audio) and result.a.reply_text.startswith("[echo]")
    assert result.a.timeline["extra"]["answered_by"] == "echo"
    assert result.b.ok and playable_sides(result) == {"b"}


def feed_turn(session, audio: np.ndarray, rate: int, turn_ends: list[TurnEnd], count: int, timeout_s: float) -> None:
    """Speech then silence in real time until the ``count``-th turn has ended."""
    start = time.monotonic()
    padded = np.concatenate([audio, np.zeros(int(2.0 * rate), np.float32)])
    for index, piece in enumerate(chunks(padded, rate // 50)):
        time.sleep(max(0.0, start + index * 0.02 - time.monotonic()))
        session.push_audio(piece)
    deadline = time.monotonic() + timeout_s
    while len(turn_ends) < count and time.monotonic() < deadline:
        session.push_audio(np.zeros(rate // 50, np.float32))
        time.sleep(0.02)


@pytest.mark.slow
def test_killing_the_server_mid_conversation_hands_the_next_turn_to_the_cascade(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the registry and the real catalogue: Mini-Omni2 answers, dies, the cascade answers, marked."""
    fake = FakeMiniOmni("mini-omni2", chunks=4, chunk_s=0.2)
    url = fake.__enter__()
    try:
        monkeypatch.setenv("MINI_OMNI2_URL", url)
        registry = EngineRegistry(load_catalog(), HostInfo(accelerator="cpu"))
        engine = registry.get("mini-omni2")
        got: list[Event] = []
        lock = threading.Lock()

        def collect(event: Event) -> None:
            with lock:
                got.append(event)

        turn_ends: list[TurnEnd] = []
        observer = TurnObserver.for_engine(engine)  # what every consumer reads: the turn records

        def on_event(event: Event) -> None:
            collect(event)
            observer.observe(event)
            if isinstance(event, TurnEnd):
                turn_ends.append(event)

        session = engine.open_session(SessionOptions(), on_event)
        question = speak("What is the capital of France?") if espeak_available() else speech(1.5)
        feed_turn(session, question, 16_000, turn_ends, 1, 20)
        fake.kill()
        feed_turn(session, question, 16_000, turn_ends, 2, 60)
        session.close()
        registry.close()
    finally:
        fake.__exit__(None, None, None)
    first, second = observer.records[:2]
    assert first.status == "ok" and not first.answered_by and first.reply_text == "Paris is the capital."
    assert second.status == "fallback" and second.answered_by == "cascade", (second.detail, second.timeline.extra)
    assert second.reply_text.startswith("[cascade]") and "first_audio_out" in second.timeline.marks
    notices = [e.message for e in got if isinstance(e, ErrorEvent)]
    assert len(notices) == 1 and "Offline cascade" in notices[0] and "unreachable" in notices[0]
    cascade_audio = [e for e in got[got.index(turn_ends[0]) :] if isinstance(e, AudioOut)]
    assert cascade_audio and cascade_audio[0].sample_rate == 22_050
    assert any(isinstance(e, TextOut) and e.role == "user" for e in got[got.index(turn_ends[0]) :])


def mini_omni(url: str, **defaults) -> MiniOmniEngine:
    entry = client_entry(
        "mini-omni", "speechlm_demo.engines.mini_omni.client:MiniOmniEngine", (16_000, 24_000),
        url=url, url_env="", fallback="echo", health_backoff_s=0.01, **defaults,
    )
    engine = MiniOmniEngine(entry)
    with_echo_fallback(engine)
    engine.load()
    return engine


def test_a_server_that_accepts_and_does_not_answer_holds_no_turn_for_its_probe() -> None:
    """The probe of a down server due for a retry runs aside: a barge-in ends the reply at once, a turn waits at
    most PROBE_WAIT_S before its fallback answers, and the probe's failure (2 s later) is the next turn's: it backs
    the server off."""
    with silent_listener() as port:
        engine = mini_omni(f"http://127.0.0.1:{port}", connect_timeout_s=2)  # its probe at load times out
        assert not engine.health.up
        time.sleep(0.05)  # the back-off has passed: the next turn probes
        turn = user_turn()
        threading.Timer(0.2, turn.cancel.set).start()
        started = time.monotonic()
        events = list(engine.respond(turn, [], SessionOptions()))
        assert time.monotonic() - started < 1.2  # not the 2 s probe timeout
        assert not [e for e in events if isinstance(e, (AudioOut, TextOut))]
        after = user_turn(turn_id=2)
        started = time.monotonic()
        answered = list(engine.respond(after, [], SessionOptions()))
        assert time.monotonic() - started < PROBE_WAIT_S + 1.0  # the probe still runs: the fallback answers
        assert after.timeline.extra["answered_by"] == "echo" and any(isinstance(e, AudioOut) for e in answered)
        retry_at = engine.health.retry_at
        time.sleep(2.5)  # the probe times out in the background; its outcome is the next turn's
        third = user_turn(turn_id=3)
        list(engine.respond(third, [], SessionOptions()))
        engine.close()
    assert third.timeline.extra["answered_by"] == "echo" and "does not answer" in third.timeline.extra["fallback_reason"]
    assert engine.health.retry_at > retry_at  # backed off: the next turns go to the fallback without a probe


def test_a_slow_probe_that_finds_the_server_back_hands_it_the_next_turn() -> None:
    with FakeMiniOmni("mini-omni") as url:
        engine = mini_omni(url)
        engine.health.failed("it went away")
        time.sleep(0.05)
        quick = engine.probe
        engine.probe = lambda: (time.sleep(1.0), quick())[1]  # a server far away, but back
        first = user_turn()
        list(engine.respond(first, [], SessionOptions()))
        assert first.timeline.extra["answered_by"] == "echo"
        time.sleep(1.0)
        second = user_turn(turn_id=2)
        events = list(engine.respond(second, [], SessionOptions()))
        engine.close()
    assert "answered_by" not in second.timeline.extra and any(isinstance(e, AudioOut) for e in events)
    assert engine.health.up


def test_one_probe_outcome_serves_one_turn_and_a_stale_one_none(monkeypatch: pytest.MonkeyPatch) -> None:
    """Two turns waiting on one failing probe back the server off once, not twice; a probe that finished more
    than PROBE_FRESH_S ago decides nothing: the next due turn probes afresh."""
    from speechlm_demo.engines import fallback as fallback_module
    from speechlm_demo.engines.server_client import ServerFailure

    with FakeMiniOmni("mini-omni") as url:
        engine = mini_omni(url)
        probes: list[float] = []

        def failing_probe() -> None:
            probes.append(time.monotonic())
            time.sleep(0.2)
            raise ServerFailure("still busy")

        engine.probe = failing_probe
        engine.health.failed("it went away")
        time.sleep(0.05)
        turns = [user_turn(turn_id=n) for n in (1, 2)]
        threads = [threading.Thread(target=lambda t=t: list(engine.respond(t, [], SessionOptions()))) for t in turns]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert len(probes) == 1 and all(t.timeline.extra["answered_by"] == "echo" for t in turns)
        assert engine.health._wait_s == pytest.approx(0.02)  # 0.01 doubled once

        monkeypatch.setattr(fallback_module, "PROBE_FRESH_S", 0.3)
        engine.probe = lambda: (probes.append(time.monotonic()), time.sleep(1.0))[0]  # slow, then the server is back
        time.sleep(0.05)
        list(engine.respond(user_turn(turn_id=3), [], SessionOptions()))  # waits 0.5 s, then the fallback
        time.sleep(1.5)  # that probe found the server back ~1 s ago, longer than PROBE_FRESH_S
        engine.probe = failing_probe
        fourth = user_turn(turn_id=4)
        list(engine.respond(fourth, [], SessionOptions()))
        engine.close()
    assert len(probes) == 3  # the stale success was not used: a fresh probe ran, and failed
    assert fourth.timeline.extra["fallback_reason"] == "still busy"
