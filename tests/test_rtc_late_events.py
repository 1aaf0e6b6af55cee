"""After the peer leaves, what a reply still running emits stops at the handler's door: the turn observer does
not see it (no turn recorded for nobody) and the output resampler does not run on it."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import numpy as np

from speechlm_demo.engines.base import AudioOut, TextOut, TurnEnd
from speechlm_demo.rtc import EngineStreamHandler
from speechlm_demo.timeline import Timeline
from tests.engines_for_tests import engine_entry, registry_of, silence, tone


class CallCounter:
    """Wraps a callable (the output resampler) and counts its calls; everything else is passed through."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = 0

    def __call__(self, *args: Any) -> Any:
        self.calls += 1
        return self.inner(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def frames_48k(signal_16k: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """The browser's 20 ms int16 frames at 48 kHz for a 16 kHz float signal."""
    pcm = (np.repeat(signal_16k, 3) * 32767).astype(np.int16).reshape(1, -1)
    return [(48_000, pcm[:, i : i + 960]) for i in range(0, pcm.shape[1], 960)]


def test_events_after_the_peer_left_reach_neither_the_observer_nor_the_resampler() -> None:
    registry = registry_of(engine_entry("slow", "Slow", "SlowEngine"))  # 5 chunks of reply, 0.25 s apart
    handler = EngineStreamHandler(registry, "slow", ui_args=False)
    errors: list[dict[str, Any]] = []

    async def scenario() -> tuple[int, int, int, int, bool]:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        await handler.start_up()
        session = handler.session
        assert session is not None and handler._observer is not None
        observed: list[Any] = []
        observe = handler._observer.observe
        handler._observer.observe = lambda event, t=None: (observed.append(event), observe(event, t))[1]  # type: ignore[method-assign]
        resampler = handler._out_resampler = CallCounter(handler._out_resampler)  # type: ignore[assignment]
        for frame in frames_48k(np.concatenate([tone(0.6), silence(1.0)])):
            await handler.receive(frame)
        for _ in range(100):  # the reply has started playing
            if resampler.calls:
                break
            await asyncio.sleep(0.05)
        assert resampler.calls, "the slow engine never answered"
        handler._emit_threadsafe(AudioOut(tone(0.1), 16_000))  # emitted just before the peer left, handled after
        handler.shutdown()  # FastRTC's clean_up when the peer leaves
        seen_at_close, resampled_at_close, records_at_close = len(observed), resampler.calls, len(handler._observer.records)

        def late_reply() -> None:  # the engine's thread goes on with the reply it was generating
            for _ in range(3):
                handler._emit_threadsafe(AudioOut(tone(0.1), 16_000))
            handler._emit_threadsafe(TextOut("late words"))
            handler._emit_threadsafe(TurnEnd(Timeline(turn_id=1, engine_id="slow")))

        worker = threading.Thread(target=late_reply)
        worker.start()
        await asyncio.to_thread(worker.join)
        await asyncio.sleep(1.5)  # the engine's own late events too (its chunks come 0.25 s apart)
        late_seen = len(observed) - seen_at_close
        late_records = len(handler._observer.records) - records_at_close
        late_resampled = resampler.calls - resampled_at_close  # the event queued before the close included
        return late_seen, late_records, late_resampled, handler._queue.qsize(), handler.session is None

    late_seen, late_records, late_resampled, queued, session_gone = asyncio.run(scenario())
    assert late_seen == 0 and late_records == 0, "the observer saw events after the peer left"
    assert late_resampled == 0, "the output resampler ran after the peer left"
    assert queued == 0 and session_gone and errors == []


def test_the_benchmarks_probe_still_gets_the_timeline_of_a_turn_that_ends_after_the_peer_left() -> None:
    """``bench --via webrtc``'s peer hangs up once it hears the reply; the engine's stages on the WebRTC path come
    from that turn's timeline, which ends later (the app drops it; the benchmark's handler keeps it)."""
    from speechlm_demo.benchmarks.webrtc_stages import Probe, ProbedHandler

    registry = registry_of(engine_entry("slow", "Slow", "SlowEngine"))  # 5 chunks of reply, 0.25 s apart
    probe = Probe()
    handler = ProbedHandler(registry, "slow", probe)

    async def scenario() -> tuple[list[Timeline], int]:
        await handler.start_up()
        for frame in frames_48k(np.concatenate([tone(0.6), silence(1.0)])):
            await handler.receive(frame)
        for _ in range(100):  # the reply has started
            if probe.engine.units:
                break
            await asyncio.sleep(0.05)
        assert probe.engine.units, "the slow engine never answered"
        handler.shutdown()  # the peer heard the reply and left; the engine goes on for ~1 s
        for _ in range(60):
            if probe.timelines:
                break
            await asyncio.sleep(0.05)
        return probe.timelines, handler._queue.qsize()

    timelines, queued = asyncio.run(scenario())
    assert len(timelines) == 1 and timelines[0].has("user_speech_end", "reply_started", "first_audio_out"), timelines
    assert queued == 0  # nothing is handed to the closed connection
