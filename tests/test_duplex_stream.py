"""Input framing, word assembly and the drop-oldest frame queue (no models)."""

from __future__ import annotations

import threading

import numpy as np

from speechlm_demo.engines.moshi import FRAME_SIZE
from speechlm_demo.turntaking.duplex_stream import DropReporter, FrameQueue, InputFramer, WordAssembler


def test_any_rate_and_layout_becomes_24k_mono_frames() -> None:
    framer = InputFramer(input_rate=16_000)
    stereo_48k = (np.ones((2, 48_000)) * 8000).astype(np.int16)  # 1 s, channels first
    audio, frames = framer.push(stereo_48k, sample_rate=48_000)
    assert audio.dtype == np.float32 and 23_000 < len(audio) <= 24_000  # soxr holds back a few ms
    assert all(f.shape == (FRAME_SIZE,) and f.dtype == np.float32 for f in frames)
    assert len(frames) == len(audio) // FRAME_SIZE
    _, more = framer.push(np.zeros((16_000, 1), np.float32))  # (n, channels) at the default input rate
    assert len(more) >= 12
    tail = framer.flush()
    assert tail is None or tail.shape == (FRAME_SIZE,)
    assert framer.flush() is None


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
