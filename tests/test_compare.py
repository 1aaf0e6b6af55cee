"""The comparison runner: one recorded turn, two engines at once, failures contained to their side."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.catalog import EngineEntry
from speechlm_demo.compare import SideResult, answer, as_they_finish, compare
from speechlm_demo.engines.base import (
    Emit,
    Engine,
    EngineError,
    EngineSession,
    Event,
    SessionOptions,
    UserTurn,
)
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.turntaking.full_duplex import FullDuplexEngine, FullDuplexSession
from speechlm_demo.votes.pending import PendingVotes
from speechlm_demo.votes.rounds import BlindArena
from speechlm_demo.votes.store import VoteStore
from tests.engines_for_tests import ScriptedEngine, entry, silence, tone

TURN = np.concatenate([tone(0.6), silence(0.1)])


def make_entry(engine_id: str, *, duplex: str = "half", rate: int = 16_000, engine_class: str = "speechlm_demo.engines.echo:EchoEngine") -> EngineEntry:
    return EngineEntry.model_validate(
        {"id": engine_id, "label": engine_id.title(), "family": "diagnostic", "duplex": duplex, "class": engine_class,
         "sample_rates": {"input": rate, "output": rate}, "accelerators": ["cpu"], "licence": "MIT"}
    )


class Recording(ScriptedEngine):
    """Answers like :class:`ScriptedEngine` and keeps the audio of every turn it was given."""

    def __init__(self, entry: EngineEntry, device: str = "cpu", behaviour: str = "answer") -> None:
        super().__init__(entry, device, behaviour)
        self.heard: list[np.ndarray] = []

    def respond(self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions) -> Iterator[Event]:
        self.heard.append(turn.audio.copy())
        yield from super().respond(turn, history, options)


class Duplex(FullDuplexEngine):
    """A full-duplex engine: emits silence for every frame, then says one thing after 0.3 s of quiet."""

    stream_rate = 16_000
    frame_size = 320

    def __init__(self, entry: EngineEntry, device: str = "cpu", speaks: bool = True) -> None:
        super().__init__(entry, device)
        self.speaks = speaks


class DuplexSession(FullDuplexSession):
    """Only the per-frame step: the base frames, queues, tracks the user's turns and ends them."""

    engine: Duplex

    def __init__(self, engine: Duplex, options: SessionOptions, emit: Emit) -> None:
        super().__init__(engine, options, emit)
        self.heard = self.quiet = 0
        self.spoke = False

    def step(self, frame: np.ndarray) -> None:
        rate = self.rate
        if rms_dbfs(frame) > -40:
            self.heard, self.quiet = self.heard + len(frame), 0
        else:
            self.quiet += len(frame)
        if self.engine.speaks and self.heard and self.quiet >= 0.3 * rate and not self.spoke:
            self.spoke = True
            self.agent_audio(tone(0.5, rate, freq=330.0))
        else:
            self.agent_audio(np.zeros(len(frame), np.float32))


Duplex.session_class = DuplexSession


class Stuck(Engine):
    """An engine whose session blocks in ``push_audio`` until released."""

    release = threading.Event()

    def open_session(self, options: SessionOptions, emit: Emit) -> EngineSession:
        engine = self

        class Session(EngineSession):
            def _push(self, pcm: np.ndarray) -> None:
                engine.release.wait(30)

            def close(self) -> None:
                pass

        return Session(self, options, emit)


@pytest.fixture
def echo() -> EchoEngine:
    return EchoEngine(make_entry("echo"))


def test_both_sides_get_the_same_turn_at_the_same_time() -> None:
    left, right = Recording(entry("left")), Recording(entry("right"))
    started = time.monotonic()
    result = compare(left, right, TURN, 16_000, tail_s=1.0)
    wall = time.monotonic() - started
    assert result.a.status == result.b.status == "ok", (result.a.message, result.b.message)
    assert len(left.heard) == len(right.heard) == 1 and np.array_equal(left.heard[0], right.heard[0])
    assert wall < 0.75 * (result.a.elapsed_s + result.b.elapsed_s)  # concurrent, not one after the other
    for side, name in ((result.a, "left"), (result.b, "right")):
        assert side.engine_id == name and side.reply_text == "turn 1" and side.sample_rate == 16_000
        assert len(side.audio) == 5 * 1600 and side.audio.dtype == np.float32
        assert side.timeline["status"] == "ok" and 0 < side.latency_ms < 1000  # type: ignore[operator]


def test_each_side_is_reported_as_soon_as_it_is_done(echo: EchoEngine) -> None:
    slow = ScriptedEngine(entry("slow"))
    slow.delay_s = 0.3
    heard: list[tuple[str, SideResult, float]] = []
    result = compare(echo, slow, TURN, 16_000, tail_s=1.0, on_result=lambda side, res: heard.append((side, res, time.monotonic())))
    assert [side for side, _, _ in heard] == ["a", "b"]  # the echo is done first
    assert heard[0][1] is result.a and heard[1][1] is result.b
    assert heard[1][2] - heard[0][2] > 0.5


def test_answer_runs_one_engine_like_one_side_and_never_raises(echo: EchoEngine) -> None:
    alone = answer(echo, TURN, 16_000, tail_s=1.0)
    assert alone.ok and alone.engine_id == "echo" and len(alone.audio) / 16_000 > 0.6 and alone.latency_ms > 0
    crashed = answer(ScriptedEngine(entry("boom"), behaviour="crash"), TURN, 16_000, tail_s=0.5)
    assert crashed.status == "failed" and "model exploded" in crashed.message and crashed.elapsed_s > 0


def test_echo_at_two_rates(echo: EchoEngine) -> None:
    slow = EchoEngine(make_entry("echo8k", rate=8_000))
    result = compare(echo, slow, TURN, 16_000, tail_s=1.0)
    assert result.a.ok and result.b.ok and (result.a.sample_rate, result.b.sample_rate) == (16_000, 8_000)
    assert abs(len(result.a.audio) / 16_000 - len(result.b.audio) / 8_000) < 0.05  # the same turn, echoed
    assert len(result.a.audio) / 16_000 > 0.6


def test_a_crashing_side_fails_alone(echo: EchoEngine) -> None:
    result = compare(ScriptedEngine(entry("boom"), behaviour="crash"), echo, TURN, 16_000, tail_s=1.0)
    assert result.a.status == "failed" and "model exploded" in result.a.message and len(result.a.audio) == 0
    assert result.b.ok and len(result.b.audio) > 0


@pytest.mark.slow
def test_a_hanging_reply_times_out_alone(echo: EchoEngine) -> None:
    hanging = ScriptedEngine(entry("hang"), behaviour="hang")
    try:
        result = compare(echo, hanging, TURN, 16_000, tail_s=0.5, timeout_s=1.0)
    finally:
        hanging.release.set()
    assert result.b.status == "timeout" and "no reply within 1 s" in result.b.message
    assert result.a.ok and len(result.a.audio) > 0


@pytest.mark.slow
def test_a_blocked_session_is_abandoned(echo: EchoEngine) -> None:
    stuck = Stuck(make_entry("stuck"))
    started = time.monotonic()
    try:
        result = compare(stuck, echo, TURN, 16_000, tail_s=0.5, timeout_s=0.5)
    finally:
        Stuck.release.set()
    assert result.a.status == "timeout" and "did not finish in time" in result.a.message
    assert result.b.ok and time.monotonic() - started < 0.5 + 0.7 + 0.5 + 0.5 + 1.0 + 1.0


def test_a_side_that_cannot_load_fails_alone(echo: EchoEngine) -> None:
    def load() -> Engine:
        raise EngineError("weights missing")

    result = compare(load, lambda: echo, TURN, 16_000, tail_s=1.0)
    assert result.a.status == "failed" and "weights missing" in result.a.message
    assert result.b.ok and result.b.engine_id == "echo"


@pytest.mark.slow
def test_full_duplex_output_is_recorded_for_a_bounded_window(echo: EchoEngine) -> None:
    duplex = Duplex(make_entry("duplex", duplex="full"))
    started = time.monotonic()
    result = compare(duplex, echo, TURN, 16_000, tail_s=1.0, window_s=1.5)
    assert time.monotonic() - started < 0.5 + 0.7 + 1.5 + 1.0
    side = result.a
    assert side.ok, side.message
    assert 250 < side.latency_ms < 700  # type: ignore[operator]  # it answers 0.3 s after the end of speech
    assert len(side.audio) == 8000 and rms_dbfs(side.audio[:320]) > -20  # the reply, without the silence around it
    assert result.b.ok


def test_a_silent_full_duplex_engine_fails(echo: EchoEngine) -> None:
    result = compare(Duplex(make_entry("mute", duplex="full"), speaks=False), echo, TURN, 16_000, tail_s=1.0, window_s=1.0)
    assert result.a.status == "failed" and "did not speak after this turn" in result.a.message
    assert result.b.ok


def test_blind_round_runs_both_engines_and_stores_the_vote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(tmp_path))
    engines: dict[str, Any] = {"one": EchoEngine(make_entry("one")), "two": Recording(entry("two"))}
    store = VoteStore(f"sqlite:///{tmp_path / 'votes.sqlite3'}")
    arena = BlindArena(store, lambda: [e.entry for e in engines.values()], pending=PendingVotes(store), rng=random.Random(3), min_listen_s=0.0)
    blind = arena.start_round("s", TURN, 16_000)
    replies = arena.run_round(blind.round_id, "s", engines.__getitem__, tail_s=1.0)
    assert replies.a.engine_id == blind.engines[0].id and replies.a.ok and replies.b.ok
    arena.mark_listened(blind.round_id, "s", "a")
    arena.mark_listened(blind.round_id, "s", "b")
    arena.submit_vote(blind.round_id, "s", "tie")
    record = store.get(blind.round_id)
    assert record is not None and record.latency_a_ms == replies.a.latency_ms and record.latency_a_ms is not None
    assert record.latency_from == "reference_speech_end" and record.timeline_a["measured_from"]["voice_to_voice_ref_ms"] == "reference_speech_end"
    assert record.timeline_b["status"] == "ok" and {record.reply_text_a, record.reply_text_b} >= {"turn 1"}


def test_as_they_finish_yields_sides_then_the_comparison_and_passes_errors_on(echo: EchoEngine) -> None:
    items = list(as_they_finish(lambda on_result: compare(echo, Recording(entry("r")), TURN, 16_000, tail_s=0.5, on_result=on_result)))
    assert sorted(side for side, _ in items[:-1]) == ["a", "b"]
    final = items[-1]
    assert {id(final.a), id(final.b)} == {id(result) for _, result in items[:-1]}

    def broken(on_result: Any) -> Any:
        raise RuntimeError("arena gone")

    with pytest.raises(RuntimeError, match="arena gone"):
        list(as_they_finish(broken))


def test_the_compare_tab_clears_the_last_pairs_judge_scores_when_a_new_comparison_starts() -> None:
    """The judge table belongs to one pair: a recorded turn replaces it at once (the scores come after the pair);
    the microphone's start, which fires the same event without a turn, leaves it alone."""
    import gradio as gr

    from speechlm_demo.recorder import RecordedTurn
    from speechlm_demo.ui.compare_tab import JUDGES_PENDING, pending_judges

    assert pending_judges(RecordedTurn(1, tone(0.5), 16_000)) is JUDGES_PENDING
    assert pending_judges(None) == gr.skip()
