"""The FastRTC handler without a network: frames of any shape in, frames and UI updates out."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fastrtc import AdditionalOutputs

from speechlm_demo.catalog import load_catalog
from speechlm_demo.engines.base import SessionOptions
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.hardware import simulated_host
from speechlm_demo.rtc import OUTPUT_SAMPLE_RATE, EngineStreamHandler, ice_servers, server_rtc_configuration


def tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.3 * np.sin(2 * np.pi * 220 * t) * 32767).astype(np.int16)
    return np.tile(mono, (channels, 1))


async def run_handler(frames: list[tuple[int, np.ndarray]], wait_s: float = 1.5) -> list:
    """What the handler hands FastRTC in ``wait_s`` after the frames, idle silence left out."""
    registry = EngineRegistry(load_catalog(), simulated_host("cpu"))
    handler = EngineStreamHandler(registry, "echo", ui_args=False)
    await handler.start_up()
    for frame in frames:
        await handler.receive(frame)
    outputs = []
    deadline = asyncio.get_running_loop().time() + wait_s
    while asyncio.get_running_loop().time() < deadline:
        try:
            item, filler = await asyncio.wait_for(handler.next_output(), 0.1)
        except TimeoutError:
            continue
        if not filler:
            outputs.append(item)
    handler.shutdown()
    return outputs


def frames_of(signal: np.ndarray, rate: int, ms: int = 20) -> list[tuple[int, np.ndarray]]:
    size = rate * ms // 1000
    return [(rate, signal[..., i : i + size]) for i in range(0, signal.shape[-1], size)]


@pytest.mark.parametrize("rate, channels", [(48_000, 1), (44_100, 2), (16_000, 1), (8_000, 2)])
def test_any_rate_and_layout_is_echoed_at_output_rate(rate: int, channels: int) -> None:
    signal = np.concatenate([tone(0.6, rate, channels), np.zeros((channels, rate), np.int16)], axis=1)
    outputs = asyncio.run(run_handler(frames_of(signal, rate)))
    audio = [o for o in outputs if isinstance(o, tuple)]
    assert audio, "no reply audio"
    assert all(sr == OUTPUT_SAMPLE_RATE and pcm.ndim == 2 and pcm.shape[0] == 1 for sr, pcm in audio)
    total = sum(pcm.shape[1] for _, pcm in audio) / OUTPUT_SAMPLE_RATE
    assert 0.6 < total < 1.4
    updates = [o for o in outputs if isinstance(o, AdditionalOutputs)]
    messages, timelines, status = updates[-1].args
    assert timelines and timelines[-1]["metrics"]["voice_to_voice_ms"] >= 0
    assert "voice-to-voice" in status


def test_garbage_frames_are_reported_not_fatal() -> None:
    good = np.concatenate([tone(0.6, 48_000), np.zeros((1, 48_000), np.int16)], axis=1)
    bad = [(48_000, np.array(["x"] * 960)), (0, np.zeros((1, 960), np.int16)), (48_000, np.zeros((2, 2, 2), np.int16))]
    outputs = asyncio.run(run_handler(bad + frames_of(good, 48_000)))
    updates = [o for o in outputs if isinstance(o, AdditionalOutputs)]
    texts = " ".join(m["content"] for m in updates[-1].args[0])
    assert "Ignored unusable audio" in texts
    assert any(isinstance(o, tuple) for o in outputs), "the session stopped after bad frames"


def test_nan_and_int16_scale_floats_from_the_browser_are_reported_once_and_the_session_goes_on() -> None:
    nan = np.full((1, 960), np.nan, np.float32)
    loud = tone(0.02, 48_000).astype(np.float32)  # float frames in int16 scale
    good = np.concatenate([tone(0.6, 48_000), np.zeros((1, 48_000), np.int16)], axis=1)
    outputs = asyncio.run(run_handler([(48_000, nan), (48_000, nan), (48_000, loud)] + frames_of(good, 48_000)))
    texts = [m["content"] for m in [o for o in outputs if isinstance(o, AdditionalOutputs)][-1].args[0]]
    assert sum("NaN or infinite" in text for text in texts) == 1  # the guard's message reaches the user, once
    assert sum("outside [-1, 1] were clipped" in text for text in texts) == 1
    echoed = sum(pcm.shape[1] for o in outputs if isinstance(o, tuple) for sr, pcm in [o] if sr == OUTPUT_SAMPLE_RATE)
    assert echoed > 0.5 * OUTPUT_SAMPLE_RATE, "the session stopped after the bad frames"


def test_browser_audio_is_resampled_once_by_the_guard_holding_back_about_a_millisecond() -> None:
    async def pushed() -> tuple[int, int]:
        registry = EngineRegistry(load_catalog(), simulated_host("cpu"))
        handler = EngineStreamHandler(registry, "echo", ui_args=False)
        await handler.start_up()
        rate = handler.session.input_sample_rate  # type: ignore[union-attr]
        taken: list[int] = []
        original = handler.session._push  # type: ignore[union-attr]
        handler.session._push = lambda pcm: (taken.append(len(pcm)), original(pcm))  # type: ignore[union-attr]
        for frame in frames_of(tone(1.0, 48_000, 2), 48_000):  # stereo int16 at 48 kHz, the engine takes 16 kHz mono
            await handler.receive(frame)
        handler.shutdown()
        return sum(taken), rate

    total, rate = asyncio.run(pushed())
    assert rate == 16_000 and 16_000 - 0.0015 * 16_000 < total <= 16_000  # soxr HQ's stream would hold 21-33 ms


def test_unknown_engine_is_a_message() -> None:
    async def go() -> list:
        registry = EngineRegistry(load_catalog(), simulated_host("cpu"))
        handler = EngineStreamHandler(registry, "no-such-engine", ui_args=False)
        await handler.start_up()
        await handler.receive((48_000, tone(0.1, 48_000)))
        return handler._drain()

    update = asyncio.run(go())[-1]
    assert "unknown engine 'no-such-engine'" in update.args[2]


def test_ice_servers_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SPEECHLM_TURN_URLS", raising=False)
    assert server_rtc_configuration() == {"iceServers": []}
    monkeypatch.setenv("SPEECHLM_TURN_URLS", "turn:turn.example.org:3478, turns:turn.example.org:5349")
    monkeypatch.setenv("SPEECHLM_TURN_USERNAME", "u")
    monkeypatch.setenv("SPEECHLM_TURN_CREDENTIAL", "p")
    assert ice_servers() == [
        {"urls": ["turn:turn.example.org:3478", "turns:turn.example.org:5349"], "username": "u", "credential": "p"}
    ]


def test_conversation_puts_the_placeholder_before_the_reply() -> None:
    from speechlm_demo.rtc import Conversation

    c = Conversation()
    c.add("assistant", "first")
    c.add("assistant", "part")
    c.end_turn("🎤 (1.0 s of speech)")
    c.add("user", "hello")
    c.add("assistant", "hi")
    c.end_turn(None)
    assert [(m["role"], m["content"]) for m in c.messages] == [
        ("user", "🎤 (1.0 s of speech)"), ("assistant", "first part"), ("user", "hello"), ("assistant", "hi")
    ]
    c.add("assistant", "a reply the silence rule committed")  # listen_asr's words may come after the reply
    c.add("user", "what the turn layer heard")
    c.end_turn(None)
    assert [m["role"] for m in c.messages[-2:]] == ["user", "assistant"]
    assert c.messages[-2]["content"] == "what the turn layer heard"


def test_interrupt_drops_queued_reply_audio_but_keeps_ui_updates() -> None:
    from speechlm_demo.engines.base import AudioOut, Interrupt

    async def go() -> list:
        registry = EngineRegistry(load_catalog(), simulated_host("cpu"))
        handler = EngineStreamHandler(registry, "echo", ui_args=False)
        handler._loop = asyncio.get_running_loop()
        for _ in range(5):
            handler._on_event(AudioOut(np.full(2400, 0.2, np.float32), 24_000))
        handler._on_event(Interrupt(1))
        return handler._drain()

    left = asyncio.run(go())
    assert not any(isinstance(item, tuple) for item in left)
    assert "(interrupted)" in left[-1].args[0][-1]["content"]


@pytest.mark.parametrize("from_rate, to_rate, size", [(48_000, 16_000, 960), (22_050, 48_000, 2_205), (24_000, 48_000, 480)])
def test_the_handlers_resampler_holds_back_about_a_millisecond(from_rate: int, to_rate: int, size: int) -> None:
    from speechlm_demo.audio import LowDelayResampler, chunks

    t = np.arange(from_rate) / from_rate
    signal = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    resampler = LowDelayResampler(to_rate)
    out = np.concatenate([resampler(piece, from_rate) for piece in chunks(signal, size)])
    assert to_rate - 0.0015 * to_rate < len(out) <= to_rate  # soxr's streaming mode would hold 21-33 ms here
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * to_rate / len(out) - 440) < 2
    assert np.max(np.abs(out[to_rate // 10 :])) == pytest.approx(0.3, abs=0.01)  # no loss in the passband
    assert len(resampler(np.zeros(0, np.float32), from_rate)) == 0
    restarted = resampler(signal[:size].astype(np.float32), 8_000)  # another input rate restarts the stream
    assert 0 < len(restarted) <= size * to_rate // 8_000


def test_each_reply_ends_on_a_whole_20_ms_frame() -> None:
    # 44.1 kHz in, 16 kHz echo, 48 kHz out: chunk sizes that are no multiple of FastRTC's 960-sample frames
    signal = np.concatenate([tone(0.63, 44_100, 2), np.zeros((2, 44_100), np.int16)], axis=1)
    outputs = asyncio.run(run_handler(frames_of(signal, 44_100)))
    audio = [pcm for item in outputs if isinstance(item, tuple) for pcm in [item[1].reshape(-1)]]
    updates = [o for o in outputs if isinstance(o, AdditionalOutputs)]
    assert updates[-1].args[1], "the turn did not end"
    total = sum(len(pcm) for pcm in audio)
    assert total % 960 == 0  # nothing left in FastRTC's framing to play before the next reply
    assert np.abs(audio[-1][-1:]).max() == 0 and total / OUTPUT_SAMPLE_RATE > 0.6  # silence only pads the end


def test_a_flushed_resampler_gives_its_tail_and_goes_on_at_the_same_rate() -> None:
    from speechlm_demo.audio import LowDelayResampler

    resampler = LowDelayResampler(48_000)
    resampler.prime(16_000)
    out = resampler(np.full(1_600, 0.5, np.float32), 16_000)
    tail = resampler.flush()
    assert 0 < len(tail) < 96 and len(out) + len(tail) == pytest.approx(4_800, abs=3)  # ~1 ms was held
    assert len(resampler(np.full(1_600, 0.5, np.float32), 16_000)) == pytest.approx(4_800, abs=96)
    assert len(LowDelayResampler(48_000).flush()) == 0


def test_a_new_input_rate_hands_on_what_the_old_stream_held() -> None:
    from speechlm_demo.audio import LowDelayResampler

    resampler = LowDelayResampler(48_000)
    pieces = [(np.full(2_400, 0.5, np.float32), 24_000), (np.full(2_205, 0.5, np.float32), 22_050), (np.full(4_800, 0.5, np.float32), 48_000)]
    total = sum(len(resampler(pcm, rate)) for pcm, rate in pieces) + len(resampler.flush())
    assert total == pytest.approx(3 * 4_800, abs=3)  # 100 ms in at each rate, 300 ms out: nothing lost at a switch


@pytest.fixture
def echo_opened(monkeypatch: pytest.MonkeyPatch) -> list[tuple[SessionOptions, object]]:
    """Every session the echo engine opens, with the options it was opened with, in order."""
    opened: list[tuple[SessionOptions, object]] = []
    original = EchoEngine.open_session

    def recording(self: EchoEngine, options: SessionOptions, emit: object) -> object:
        opened.append((options, original(self, options, emit)))  # type: ignore[arg-type]
        return opened[-1][1]

    monkeypatch.setattr(EchoEngine, "open_session", recording)
    return opened


def test_every_connection_opens_its_session_with_the_handlers_options(echo_opened: list[tuple[SessionOptions, object]]) -> None:
    """``bench --via webrtc`` gives the WebRTC path the seed the in-process path has; each connection (FastRTC
    copies the handler) gets its own copy, so one session's changes never reach the next."""
    registry = EngineRegistry(load_catalog(), simulated_host("cpu"))
    template = EngineStreamHandler(registry, "echo", ui_args=False, options=SessionOptions(seed=5, extra={"k": 1}))

    async def connect_twice() -> None:
        for handler in (template.copy(), template.copy()):
            await handler.start_up()
            assert handler.session is not None
            handler.shutdown()

    asyncio.run(connect_twice())
    opened = [options for options, _session in echo_opened]
    assert [o.seed for o in opened] == [5, 5] and opened[0] is not opened[1]
    opened[0].extra["k"] = 2
    assert opened[1].extra == {"k": 1} and template.options.extra == {"k": 1}


def test_a_closed_connection_releases_emit_and_drops_what_the_engine_still_sends() -> None:
    """FastRTC calls ``shutdown()`` when the peer leaves, then stops the track; its output loop was left
    waiting in ``emit()`` for its 60 s timeout, and a UI update the engine sent after the close went to the
    closed data channel (a logged traceback). Now ``emit()`` answers None within ``CLOSED_POLL_S`` and nothing
    more is queued."""
    from speechlm_demo.engines.base import TextOut

    async def scenario() -> tuple[object, float, bool]:
        registry = EngineRegistry(load_catalog(), simulated_host("cpu"))
        handler = EngineStreamHandler(registry, "echo", ui_args=False)
        await handler.start_up()
        while not handler._queue.empty():  # the status updates of the start
            await handler.emit()
        waiting = asyncio.ensure_future(handler.emit())
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing to hand on: emit() waits
        started = asyncio.get_running_loop().time()
        handler.shutdown()
        item = await asyncio.wait_for(waiting, 2.0)
        released_s = asyncio.get_running_loop().time() - started
        handler._on_event(TextOut("late words"))  # what a turn still running emits after the close
        return item, released_s, handler._queue.empty()

    item, released_s, empty = asyncio.run(scenario())
    assert item is None and released_s < 1.0 and empty


def test_a_peer_that_leaves_while_the_engine_loads_gets_no_session(
    monkeypatch: pytest.MonkeyPatch, echo_opened: list[tuple[SessionOptions, object]]
) -> None:
    """FastRTC does not cancel the start-up when the peer leaves: a session opened after ``shutdown()`` would
    never be closed (its threads and memory kept for good)."""
    registry = EngineRegistry(load_catalog(), simulated_host("cpu"))
    handler = EngineStreamHandler(registry, "echo", ui_args=False)
    loading = registry.get

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        left = asyncio.Event()

        def slow_load(engine_id: str) -> object:
            engine = loading(engine_id)
            loop.call_soon_threadsafe(lambda: (handler.shutdown(), left.set()))  # the peer leaves meanwhile
            return engine

        monkeypatch.setattr(registry, "get", slow_load)
        starting = asyncio.ensure_future(handler.start_up())
        await left.wait()
        await starting

    asyncio.run(scenario())
    assert echo_opened == [] and handler.session is None
