"""Input framing, word assembly and the drop-oldest frame queue (no models)."""

from __future__ import annotations

import threading

import numpy as np

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.catalog import EngineEntry
from speechlm_demo.engines.base import Emit, SessionOptions
from speechlm_demo.engines.moshi import FRAME_SIZE
from speechlm_demo.turntaking.duplex_stream import DropReporter, FrameQueue, InputFramer, WordAssembler
from speechlm_demo.turntaking.full_duplex import FullDuplexEngine, FullDuplexSession


def test_clean_audio_is_cut_into_frames() -> None:
    framer = InputFramer()
    audio = np.arange(FRAME_SIZE * 2 + 100, dtype=np.float32) / 1e5
    frames = framer.push(audio[:1000]) + framer.push(audio[1000:])
    assert len(frames) == 2 and all(f.shape == (FRAME_SIZE,) for f in frames)
    assert np.array_equal(np.concatenate(frames), audio[: 2 * FRAME_SIZE])  # nothing converted, nothing lost
    tail = framer.flush()
    assert tail is not None and np.array_equal(tail[:100], audio[-100:]) and not tail[100:].any()
    assert framer.flush() is None


class Listener(FullDuplexEngine):
    """Keeps every frame it is given."""

    frame_size = 480


class ListenerSession(FullDuplexSession):
    def __init__(self, engine: Listener, options: SessionOptions, emit: Emit) -> None:
        super().__init__(engine, options, emit)
        self.heard: list[np.ndarray] = []

    def step(self, frame: np.ndarray) -> None:
        self.heard.append(frame.copy())


Listener.session_class = ListenerSession


def test_pushed_audio_is_cleaned_and_resampled_once_to_the_stream_rate() -> None:
    listener = Listener(EngineEntry.model_validate({
        "id": "listener", "label": "Listener", "family": "diagnostic", "duplex": "full", "licence": "MIT",
        "class": "tests.test_duplex_stream:Listener", "accelerators": ["cpu"],
        "sample_rates": {"input": 16_000, "output": 24_000},  # the catalogue's input rate is not the stream's
        "defaults": {"max_backlog_frames": 1_000},
    }))
    session = listener.open_session(SessionOptions(), lambda event: None)
    assert session.ready.wait(5)
    t = np.arange(48_000) / 48_000
    treble = (0.3 * np.sin(2 * np.pi * 10_000 * t) * 32767).astype(np.int16)  # 10 kHz: above 16 kHz's band
    for piece in np.array_split(np.stack([treble, treble]), 50, axis=1):  # stereo int16 at 48 kHz, channels first
        session.push_audio(piece, sample_rate=48_000)
    session.flush(timeout=5)
    session.close()
    heard = np.concatenate(session.heard)
    assert 23_000 <= len(heard) <= 24_480  # one second at 24 kHz (soxr holds back a few ms)
    assert rms_dbfs(heard[2_400:-2_400]) > -15  # the treble got through: never squeezed through 16 kHz
def test_pieces_become_words() -> None:
    words = WordAssembler(idle_frames=2)
    out = [words.piece(p) for p in (" hel", "lo", " wor", "ld")]
    assert out == [None, None, "hello", None]
    assert words.idle() is None and words.idle() == "world"
    assert words.flush() is None


def test_queue_drops_oldest_and_join_counts_drops() -> None:
    queue: FrameQueue[int] = FrameQueue(2)
    assert [queue.put(i) for i in range(4)] == [False, False, True, True]
    assert queue.dropped == 2
    assert queue.get(0.1) == 2 and queue.get(0.1) == 3 and queue.get(0.01) is None
    assert not queue.join(0.01)
    queue.task_done()
    threading.Timer(0.05, queue.task_done).start()
    assert queue.join(2.0)
    queue.put(9)
    queue.clear()
    assert queue.join(0.01)


def test_drop_reports_are_rate_limited() -> None:
    reporter = DropReporter("Moshi", every_s=60)
    first = reporter.dropped()
    assert first and "1 audio frame" in first
    assert reporter.dropped(3) is None and reporter.count == 4
