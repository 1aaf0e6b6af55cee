"""The in-process Moshi engine on a tiny random-weight checkpoint: the package's real loaders, Mimi and
LMGen code path, 1920-sample frames and the 17-stream token layout, on CPU."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest

from speechlm_demo.engines.base import AudioOut, ErrorEvent, Event, SessionOptions, TextOut, TurnEnd
from speechlm_demo.engines.moshi import FRAME_SIZE, SAMPLE_RATE
from speechlm_demo.engines.registry import engine_class
from speechlm_demo.measure.observer import TurnObserver

pytestmark = pytest.mark.slow


class Recorder:
    """Collects events with their arrival time; the one observer makes the turn records."""

    def __init__(self) -> None:
        self.events: list[tuple[float, Event]] = []
        self.observer = TurnObserver("moshi-tiny", audible_dbfs=-50.0)
        self.lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self.lock:
            now = time.monotonic()
            self.events.append((now, event))
            self.observer.observe(event, now)

    def of(self, kind: type) -> list[Any]:
        return [e for _, e in self.events if isinstance(e, kind)]


def utterance(rate: int, lead: float = 0.4, speech: float = 1.0, tail: float = 1.6) -> np.ndarray:
    t = np.arange(int(speech * rate)) / rate
    voice = 0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))
    return np.concatenate([np.zeros(int(lead * rate)), voice, np.zeros(int(tail * rate))]).astype(np.float32)


def run_fast(engine: Any, options: SessionOptions, audio: np.ndarray, rate: int | None = None) -> Recorder:
    """Push everything at once (big backlog allowed), flush, close."""
    recorder = Recorder()
    options.extra.setdefault("max_backlog_frames", 1000)
    session = engine.open_session(options, recorder)
    try:
        session.push_audio(audio, rate)
        session.flush()
    finally:
        session.close()
    return recorder


def test_catalogue_class_path_resolves() -> None:
    assert engine_class("speechlm_demo.engines.moshi.local:MoshiEngine").__name__ == "MoshiEngine"


def test_real_time_stream_gives_audio_text_and_a_turn_timeline(local_engine: Any) -> None:
    rate = 16_000  # the entry's input rate; stereo int16 arrives and is converted
    audio = utterance(rate)
    stereo = (np.stack([audio, audio], axis=1) * 32767).astype(np.int16)
    recorder = Recorder()
    session = local_engine.open_session(SessionOptions(seed=3), recorder)
    assert session.ready.wait(30)
    started, chunk = time.monotonic(), rate // 50
    speech_from, speech_to = started + 0.4, started + 1.4
    for index in range(0, len(stereo), chunk):
        time.sleep(max(0.0, started + index / rate - time.monotonic()))
        session.push_audio(stereo[index : index + chunk])
    session.flush()
    session.close()

    audio_out = recorder.of(AudioOut)
    assert audio_out and all(a.sample_rate == SAMPLE_RATE and a.pcm.shape == (FRAME_SIZE,) for a in audio_out)
    assert len(audio_out) >= len(audio) * SAMPLE_RATE // rate // FRAME_SIZE - 3  # one out per frame in, minus delays
    assert any(speech_from < t < speech_to for t, e in recorder.events if isinstance(e, AudioOut)), "full duplex"
    assert all(np.isfinite(a.pcm).all() for a in audio_out)
    words = [t.text for t in recorder.of(TextOut)]
    assert words and all(w == w.strip() and w for w in words)
    (turn_end,) = recorder.of(TurnEnd)
    timeline = turn_end.timeline
    assert timeline.engine_id == "moshi-tiny" and timeline.has("user_speech_start", "user_speech_end", "turn_detected")
    assert timeline.between_ms("user_speech_start", "user_speech_end") == pytest.approx(1000, abs=150)
    assert timeline.status == "ok" and timeline.voice_to_voice_ms is not None
    assert timeline.extra["frames"] > 20 and timeline.extra["step_ms_mean"] > 0 and timeline.extra["rtf"] > 0
    assert not recorder.of(ErrorEvent)


def test_seed_and_sampling_are_per_session(local_engine: Any) -> None:
    audio = utterance(SAMPLE_RATE, lead=0.1, speech=0.5, tail=0.3)

    def reply(seed: int, **extra: Any) -> tuple[str, np.ndarray]:
        recorder = run_fast(local_engine, SessionOptions(seed=seed, extra=dict(extra)), audio)
        return " ".join(t.text for t in recorder.of(TextOut)), np.concatenate([a.pcm for a in recorder.of(AudioOut)])

    text_a, audio_a = reply(7)
    text_b, audio_b = reply(7)
    assert text_a == text_b and np.allclose(audio_a, audio_b, atol=1e-5)
    text_c, audio_c = reply(8)
    assert text_c != text_a or not np.allclose(audio_c, audio_a, atol=1e-5)
    reply(7, top_k_text=1, temp_text=0.5, top_k=100_000)
    assert local_engine._gen_sampling.top_k_text == 1  # the generator was rebuilt for this session's sampling
    assert local_engine.sampling_for(SessionOptions(temperature=0.3)).temp == 0.3


def test_falling_behind_drops_frames_and_says_so(local_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder()
    session = local_engine.open_session(SessionOptions(extra={"max_backlog_frames": 2}), recorder)
    assert session.ready.wait(30)
    real_step = local_engine.run_frame
    monkeypatch.setattr(local_engine, "run_frame", lambda *a, **k: (time.sleep(0.15), real_step(*a, **k))[1])
    session.push_audio(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)  # 12 frames at once
    started = time.monotonic()
    session.flush()
    session.close()
    assert time.monotonic() - started < 2.0, "the backlog stayed bounded"
    errors = recorder.of(ErrorEvent)
    assert errors and "falling behind real time" in errors[0].message and not errors[0].fatal
    assert session.frames.dropped >= 8 and session.drops.count == session.frames.dropped


def test_out_of_memory_ends_the_session_and_frees_the_engine(local_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    recorder = Recorder()
    session = local_engine.open_session(SessionOptions(), recorder)
    assert session.ready.wait(30)

    def oom(*args: Any, **kwargs: Any) -> None:
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(local_engine, "run_frame", oom)
    session.push_audio(np.zeros(FRAME_SIZE * 3, np.float32), SAMPLE_RATE)
    session._worker.join(10)
    (error,) = recorder.of(ErrorEvent)
    assert error.fatal and "out of GPU memory" in error.message
    session.push_audio(np.zeros(FRAME_SIZE, np.float32), SAMPLE_RATE)  # ignored, no crash
    session.close()
    monkeypatch.undo()
    again = run_fast(local_engine, SessionOptions(), np.zeros(FRAME_SIZE * 6, np.float32), SAMPLE_RATE)
    assert again.of(AudioOut) and not again.of(ErrorEvent)


def test_a_second_concurrent_session_is_refused(local_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from speechlm_demo.engines.moshi import local

    monkeypatch.setattr(local, "BUSY_WAIT_S", 0.2)
    first, second = Recorder(), Recorder()
    session = local_engine.open_session(SessionOptions(), first)
    assert session.ready.wait(30)
    other = local_engine.open_session(SessionOptions(), second)
    assert other.ready.wait(5)
    (error,) = second.of(ErrorEvent)
    assert error.fatal and "busy" in error.message
    other.close()
    session.close()
    assert not first.of(ErrorEvent)
