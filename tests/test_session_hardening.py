"""Issue 13, items 4 and 5: a session that survives a monologue and any input pushed into it."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Iterator

import numpy as np
import pytest

from speechlm_demo.engines.base import AudioOut, ErrorEvent, Event, SessionOptions, TurnEnd, UserTurn
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.measure.observer import TurnObserver
from speechlm_demo.measure.record import TurnRecord
from speechlm_demo.turntaking.reply_runner import ReplyRunner
from tests.engines_for_tests import Recorder, ScriptedEngine, entry, silence, tone

RATE = 16_000
FRAME = 320


class BusyEngine(ScriptedEngine):
    """Works ``work_s`` on every turn before it looks at its cancellation (as an ASR encoding a turn does)
    and records how many turns it works on at once."""

    work_s = 0.15

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.running = 0
        self.most_at_once = 0
        self.calls = 0
        self._count = threading.Lock()

    def respond(self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions) -> Iterator[Event]:
        with self._count:
            self.calls += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self.work_s)
            yield from super().respond(turn, history, options)
        finally:
            with self._count:
                self.running -= 1


def monologue(seconds: float) -> np.ndarray:
    """Speech-like bursts of 1.5 s with 0.3 s gaps: a pause (a speculative start) every 1.8 s, never an end."""
    burst = np.concatenate([tone(1.5), silence(0.3)])
    return np.tile(burst, int(seconds / 1.8) + 1)


def push_frames(session: object, audio: np.ndarray, realtime: bool = False) -> None:
    for start in range(0, len(audio), FRAME):
        session.push_audio(audio[start : start + FRAME])  # type: ignore[attr-defined]
        if realtime:
            time.sleep(FRAME / RATE)


def test_a_monologue_runs_one_reply_at_a_time_and_the_question_after_it_is_answered() -> None:
    """The issue's probe: 90 s of speech with short gaps piled up speculative replies (109 threads) and the
    question asked right after got no reply. Here the audio comes faster than real time, the worst case."""
    engine = BusyEngine(entry(pause_ms=160, end_silence_ms=400, max_turn_s=30))
    rec = Recorder()
    observer = TurnObserver.for_engine(engine)
    session = engine.open_session(SessionOptions(), lambda event: (observer.observe(event), rec(event)))
    threads_before = threading.active_count()
    most_threads = threads_before
    speech = monologue(90.0)
    for start in range(0, 90 * RATE, RATE):
        push_frames(session, speech[start : start + RATE])
        most_threads = max(most_threads, threading.active_count())
    pauses = 90 // 1.8
    assert engine.most_at_once == 1
    assert most_threads - threads_before <= 5  # one reply worker and a few short-lived timers
    assert engine.calls < pauses / 2  # superseded replies never started
    asked = time.monotonic()
    push_frames(session, np.concatenate([silence(0.5), tone(0.6), silence(1.0)]), realtime=True)
    deadline = time.monotonic() + 20

    def answer() -> TurnRecord | None:
        return next((r for r in list(observer.records) if r.timeline.marks.get("user_speech_end", 0.0) >= asked), None)

    while answer() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    record = answer()
    assert record is not None and record.status == "ok" and "first_audio_out" in record.timeline.marks
    session.close()


def test_a_finished_turn_does_not_keep_its_audio() -> None:
    engine = ScriptedEngine(entry())
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    push_frames(session, np.concatenate([tone(0.5), silence(0.6)]))
    rec.wait_for(TurnEnd)
    deadline = time.monotonic() + 5
    while session.runner.running is not None and time.monotonic() < deadline:  # type: ignore[attr-defined]
        time.sleep(0.01)
    assert session._reply is not None and session._reply.turn.audio.size == 0  # type: ignore[attr-defined]
    session.close()


class _Worker:
    def __init__(self, runner: ReplyRunner) -> None:
        self.runner, self.started, self.cancel = runner, threading.Event(), threading.Event()

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()

    def start(self) -> None:
        self.started.set()


def test_the_runner_starts_the_newest_waiting_reply_and_leaves_a_hung_worker_behind() -> None:
    runner = ReplyRunner(grace_s=0.3)
    first, second, third = _Worker(runner), _Worker(runner), _Worker(runner)
    runner.submit(first)
    assert first.started.is_set()
    first.cancel.set()
    runner.submit(second)
    second.cancel.set()  # superseded while waiting: never starts
    runner.submit(third)
    assert not second.started.is_set() and not third.started.is_set()
    assert third.started.wait(2)  # the first never stops: left behind after its grace
    assert not second.started.is_set() and runner.abandoned == 1
    runner.done(first)  # late: changes nothing
    assert runner.running is third
    runner.close()


# --- item 5: push_audio trusts its input -------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        (None, "None"),
        (np.float32(0.5), "single number"),
        (np.ones(320, np.complex64), "complex"),
        (np.zeros((2, 3, 4), np.float32), "dimensions"),
        (["a", "b"], "sample type"),
        ([[0.1, 0.2], [0.3]], "not an array"),
    ],
)
def test_unusable_input_is_reported_once_and_the_session_goes_on(bad: object, words: str) -> None:
    engine = ScriptedEngine(entry())
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    for _ in range(3):
        session.push_audio(bad)  # never raises
    errors = rec.of(ErrorEvent)
    assert len(errors) == 1 and words in errors[0].message and not errors[0].fatal
    push_frames(session, np.concatenate([tone(0.5), silence(0.6)]))
    assert rec.wait_for(TurnEnd)[0].timeline.status == "ok"
    session.close()


def test_usable_odd_input_is_cleaned_not_refused() -> None:
    """A list, int16, stereo in either layout and another rate all make a turn, without an error."""
    engine = ScriptedEngine(entry())
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    speech = np.concatenate([tone(0.5), silence(0.6)])
    session.push_audio(list(silence(0.1)))
    session.push_audio((np.stack([speech, speech]) * 32767).astype(np.int16))  # (channels, samples), int16
    rec.wait_for(TurnEnd)
    session.push_audio(np.stack([speech, speech], axis=1))  # (samples, channels)
    rec.wait_for(TurnEnd, 2)
    session.push_audio(np.concatenate([tone(0.5, 48_000), silence(0.6, 48_000)]), 48_000)
    assert [e.timeline.status for e in rec.wait_for(TurnEnd, 3)] == ["ok"] * 3
    assert not rec.of(ErrorEvent)
    session.close()


def test_one_infinite_sample_does_not_make_an_energy_vad_session_deaf() -> None:
    engine = ScriptedEngine(entry())
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    spike = silence(0.1)
    spike[100] = np.inf
    session.push_audio(spike)
    session.push_audio(np.full(320, np.nan, np.float32))
    (error,) = rec.of(ErrorEvent)
    assert "NaN or infinite" in error.message
    assert np.isfinite(session.detector.vad.noise_floor_db)  # type: ignore[attr-defined]
    push_frames(session, np.concatenate([tone(0.5), silence(0.6)]))
    assert rec.wait_for(TurnEnd)[0].timeline.status == "ok"
    session.close()


def test_echo_never_returns_samples_outside_the_unit_range() -> None:
    engine = EchoEngine(entry("echo", end_silence_ms=400))
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    huge = np.concatenate([tone(0.5), silence(0.6)]) * np.float32(3.4e38)
    push_frames(session, huge)
    rec.wait_for(TurnEnd)
    audio = np.concatenate([e.pcm for e in rec.of(AudioOut)])
    assert len(audio) > 0.4 * RATE and np.isfinite(audio).all() and np.abs(audio).max() <= 1.0
    assert sum("clipped" in e.message for e in rec.of(ErrorEvent)) == 1
    session.close()


def test_ten_minutes_pushed_at_once_stay_bounded() -> None:
    """The issue's probe: a 600 s stream pushed in one call grew to 8 GB. Turns are cut at max_turn_s and
    one reply runs at a time, so threads and memory stay bounded."""
    engine = BusyEngine(entry(pause_ms=160, end_silence_ms=400, max_turn_s=30))
    engine.work_s = 0.02
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    stream = monologue(600.0)[: 600 * RATE]
    threads_before = threading.active_count()
    most_threads = [threads_before]
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(0.01):
            most_threads.append(threading.active_count())

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    tracemalloc.start()
    try:
        session.push_audio(stream)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        stop.set()
        watcher.join()
    assert engine.most_at_once == 1
    assert max(most_threads) - threads_before <= 6  # the watcher, one reply worker and a few short-lived timers
    assert peak < 4 * stream.nbytes  # a cleaned copy of the input and its windows, not one copy per pause
    cuts = [e for e in rec.of(ErrorEvent) if "cut at 30 s" in e.message]
    assert len(cuts) >= 1
    session.close()
