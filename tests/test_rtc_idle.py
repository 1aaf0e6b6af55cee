"""Idle silence on the WebRTC output: it flows while a half-duplex session is idle, never queues ahead of
a reply, and a barge-in still flushes."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from speechlm_demo.catalog import load_catalog
from speechlm_demo.engines.base import AudioOut, Interrupt, TurnEnd
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.hardware import simulated_host
from speechlm_demo.rtc import OUTPUT_FRAME, OUTPUT_SAMPLE_RATE, EngineStreamHandler
from speechlm_demo.rtc_idle import ENV, IdlePacer, idle_silence_enabled
from speechlm_demo.timeline import Timeline

FRAME_S = OUTPUT_FRAME / OUTPUT_SAMPLE_RATE


def test_silence_is_due_only_once_what_was_handed_on_has_played() -> None:
    pacer = IdlePacer(0.02, 0.015)
    assert pacer.due_in(100.0) == 0  # nothing handed on yet: FastRTC's clock starts with the first frame
    pacer.handed(0.02, 100.0)
    assert pacer.due_in(100.0) == pytest.approx(0.035)
    pacer.handed(1.0, 100.01)  # a reply: queued behind the frame being played
    assert pacer.due_in(100.01) == pytest.approx(1.025)
    pacer.handed(0.02, 101.3)  # a stall longer than a frame: a new run starts, no silence to catch up
    assert pacer.due_in(101.3) == pytest.approx(0.035)
    pacer.restart()
    assert pacer.due_in(101.31) == 0
    with pytest.raises(ValueError):
        IdlePacer(0.02, 0.02)


def test_paced_silence_keeps_the_real_time_rate_and_never_runs_a_frame_ahead() -> None:
    rng = np.random.default_rng(0)
    pacer, now, handed_s, start = IdlePacer(0.02, 0.015), 50.0, 0.0, 50.0
    for _ in range(2_000):  # a timer that wakes 0-4 ms late, as a loaded event loop does
        now += max(0.0, pacer.due_in(now)) + rng.uniform(0, 0.004)
        pacer.handed(0.02, now)
        handed_s += 0.02
        assert handed_s <= now - start + 0.02 + 1e-9  # never more than one frame ahead of the wall clock
    assert handed_s == pytest.approx(now - start, abs=0.04)  # and no slower than real time


def test_the_setting_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for raw, expected in (("0", False), ("off", False), ("1", True), ("true", True)):
        monkeypatch.setenv(ENV, raw)
        assert idle_silence_enabled() is expected
    monkeypatch.setenv(ENV, "maybe")
    assert idle_silence_enabled() is False  # the default, with a warning
    monkeypatch.delenv(ENV)
    assert idle_silence_enabled() is False


async def echo_handler() -> EngineStreamHandler:
    handler = EngineStreamHandler(EngineRegistry(load_catalog(), simulated_host("cpu")), "echo", ui_args=False)
    await handler.start_up()
    return handler


async def collect(handler: EngineStreamHandler, seconds: float) -> list[tuple[object, bool]]:
    """Everything the handler hands FastRTC for ``seconds``, as FastRTC's decode loop calls it."""
    items: list[tuple[object, bool]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while (left := deadline - loop.time()) > 0:
        try:
            items.append(await asyncio.wait_for(handler.next_output(), left))
        except TimeoutError:
            break
    return items


def silence_frames(items: list[tuple[object, bool]]) -> list[np.ndarray]:
    return [item[1] for item, filler in items if filler]  # type: ignore[index]


def reply(seconds: float, rate: int = 16_000) -> AudioOut:
    t = np.arange(int(seconds * rate)) / rate
    return AudioOut((0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), rate)


def test_silence_flows_while_a_half_duplex_session_is_idle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "1")

    async def go() -> tuple[list, float]:
        handler = await echo_handler()
        loop = asyncio.get_running_loop()
        start = loop.time()
        items = await collect(handler, 0.5)
        elapsed = loop.time() - start
        handler.shutdown()
        return items, elapsed

    items, elapsed = asyncio.run(go())
    frames = silence_frames(items)
    assert len(frames) >= 5, f"{len(frames)} silence frames in {elapsed:.2f} s"
    assert len(frames) <= elapsed / FRAME_S + 2  # paced: nothing runs ahead to wait in FastRTC's queue
    assert all(f.shape == (1, OUTPUT_FRAME) and not np.any(f) for f in frames)
    assert all(item[0] == OUTPUT_SAMPLE_RATE for item, filler in items if filler)  # type: ignore[index]


@pytest.mark.parametrize("setting", ["0", None])
def test_no_silence_when_switched_off_which_is_the_default(monkeypatch: pytest.MonkeyPatch, setting: str | None) -> None:
    if setting is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, setting)

    async def go() -> list:
        handler = await echo_handler()
        items = await collect(handler, 0.3)
        handler.shutdown()
        return items

    items = asyncio.run(go())
    assert not silence_frames(items) and not any(isinstance(item, tuple) for item, _ in items)


def test_a_reply_goes_out_next_not_behind_queued_silence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "1")

    async def go() -> tuple[list, list, list]:
        handler = await echo_handler()
        idle = await collect(handler, 0.2)
        waiting = asyncio.ensure_future(handler.next_output())  # FastRTC waits for the next frame
        await asyncio.sleep(0)
        while waiting.done():  # a frame that was due already: handed on before the reply exists
            idle.append(waiting.result())
            waiting = asyncio.ensure_future(handler.next_output())
            await asyncio.sleep(0)
        handler._on_event(reply(0.4))  # while next_output() waits for the next silence frame
        handler._on_event(reply(1.6))
        first = [await waiting]
        after = await collect(handler, 0.3)  # 2 s of reply handed on: no silence until it has played
        handler.shutdown()
        return idle, first, after

    idle, first, after = asyncio.run(go())
    assert silence_frames(idle), "no silence before the reply"
    (item, filler), = first
    assert not filler and np.abs(item[1]).max() > 0.2  # the reply itself, straight after the silence
    assert not silence_frames(after), "silence was queued behind the reply"
    handed = sum(item[1].shape[-1] for item, _ in first + after if isinstance(item, tuple)) / OUTPUT_SAMPLE_RATE
    assert handed == pytest.approx(2.0, abs=0.01)


def test_silence_resumes_after_the_reply_has_played(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "1")

    async def go() -> list:
        handler = await echo_handler()
        await collect(handler, 0.05)
        handler._on_event(reply(0.1))
        handler._on_event(TurnEnd(Timeline()))
        items = await collect(handler, 0.5)
        handler.shutdown()
        return items

    items = asyncio.run(go())
    audio = [(item[1], filler) for item, filler in items if isinstance(item, tuple)]
    first_silence = next(i for i, (_, filler) in enumerate(audio) if filler)
    assert first_silence > 0 and not any(filler for _, filler in audio[:first_silence])
    assert all(filler for _, filler in audio[first_silence:])  # reply audio, then only silence
    reply_samples = sum(pcm.shape[-1] for pcm, _ in audio[:first_silence])
    assert reply_samples % OUTPUT_FRAME == 0 and reply_samples / OUTPUT_SAMPLE_RATE >= 0.1


def test_barge_in_flushes_the_reply_and_silence_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "1")

    async def go() -> list:
        handler = await echo_handler()
        await collect(handler, 0.1)
        for _ in range(5):
            handler._on_event(reply(0.3))
        (played, filler), = [await handler.next_output()]  # FastRTC has the first 0.3 s, the rest is queued
        assert not filler and np.abs(played[1]).max() > 0.2
        handler._on_event(Interrupt(1))
        items = await collect(handler, 0.2)
        handler.shutdown()
        return items

    items = asyncio.run(go())
    audio = [(item, filler) for item, filler in items if isinstance(item, tuple)]
    assert all(filler for _, filler in audio), "the interrupted reply was not flushed"
    assert audio, "silence waited for the flushed reply's time"  # FastRTC's clock restarts with its queue
    texts = [item.args[0][-1]["content"] for item, _ in items if not isinstance(item, tuple) and item.args[0]]
    assert "(interrupted)" in texts[-1]
