"""The plumbing of a full-duplex stream: input framing, word assembly, the drop-oldest frame queue, drop reports."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class InputFramer:
    """Clean audio (mono float32 at the stream's rate: the session's input guard cleaned and resampled it) in;
    frames of ``frame_size`` samples out (Moshi: 1920 samples at 24 kHz)."""

    def __init__(self, frame_size: int = 1_920) -> None:
        self.frame_size = frame_size
        self._pending = np.zeros(0, np.float32)

    def push(self, audio: np.ndarray) -> list[np.ndarray]:
        """The complete frames ``audio`` finished."""
        self._pending = np.concatenate([self._pending, audio])
        size = self.frame_size
        count = len(self._pending) // size
        frames = [self._pending[i * size : (i + 1) * size] for i in range(count)]
        self._pending = self._pending[count * size :]
        return frames

    def flush(self) -> np.ndarray | None:
        """The partial frame left over, padded with silence (None if there is none)."""
        if not len(self._pending):
            return None
        frame = np.zeros(self.frame_size, np.float32)
        frame[: len(self._pending)] = self._pending
        self._pending = np.zeros(0, np.float32)
        return frame


class WordAssembler:
    """Moshi's text arrives as SentencePiece pieces (" hel", "lo"); the transcript wants whole words.

    A piece starting with a space starts a new word; a word also ends after ``idle_frames`` frames
    without text (Moshi stopped talking).
    """

    def __init__(self, idle_frames: int = 6) -> None:
        self.idle_frames = idle_frames
        self._word = ""
        self._idle = 0

    def piece(self, text: str) -> str | None:
        """Add a piece; returns the word it completed, if any."""
        self._idle = 0
        done = None
        if text.startswith(" ") and self._word.strip():
            done = self.flush()
        self._word += text
        return done

    def idle(self) -> str | None:
        """A frame passed without text; returns the pending word once Moshi has been quiet long enough."""
        self._idle += 1
        return self.flush() if self._idle >= self.idle_frames else None

    def flush(self) -> str | None:
        """The pending word, if any."""
        word, self._word = self._word.strip(), ""
        return word or None


class FrameQueue(Generic[T]):
    """A bounded FIFO that drops its oldest item when full (a live stream must not build a backlog).

    ``join`` waits until every item put was either taken and marked done or dropped.
    """

    def __init__(self, maxsize: int) -> None:
        self.maxsize = max(1, maxsize)
        self.dropped = 0
        self._items: deque[T] = deque()
        self._unfinished = 0
        self._cond = threading.Condition()

    def put(self, item: T) -> bool:
        """Append; returns True if the oldest item had to be dropped."""
        with self._cond:
            dropped = len(self._items) >= self.maxsize
            if dropped:
                self._items.popleft()
                self.dropped += 1
                self._unfinished -= 1
            self._items.append(item)
            self._unfinished += 1
            self._cond.notify_all()
            return dropped

    def get(self, timeout: float) -> T | None:
        """The oldest item, or None after ``timeout`` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._items, timeout):
                return None
            return self._items.popleft()

    def task_done(self) -> None:
        """An item taken with :meth:`get` is finished."""
        with self._cond:
            self._unfinished -= 1
            self._cond.notify_all()

    def clear(self) -> None:
        """Forget queued items (they count as done, not dropped)."""
        with self._cond:
            self._unfinished -= len(self._items)
            self._items.clear()
            self._cond.notify_all()

    def join(self, timeout: float) -> bool:
        """Wait until all work is finished; False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._unfinished <= 0, timeout)


class DropReporter:
    """Rate-limited messages for frames dropped because the session fell behind real time."""

    def __init__(self, what: str, every_s: float = 5.0, frame_ms: float = 80.0) -> None:
        self.what = what
        self.every_s = every_s
        self.frame_ms = frame_ms
        self.count = 0
        self._last = -float("inf")

    def dropped(self, count: int = 1) -> str | None:
        """Count dropped frames; returns a message for the user at most every ``every_s`` seconds."""
        self.count += count
        now = time.monotonic()
        if now - self._last < self.every_s:
            return None
        self._last = now
        return f"{self.what} is falling behind real time: dropped {self.count} audio frame(s) of {self.frame_ms:g} ms so far."
