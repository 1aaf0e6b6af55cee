"""The server's receive jitter buffer for microphone audio (aiortc's is a fixed 4 frames, 80 ms).

aiortc's ``RTCRtpReceiver`` builds ``JitterBuffer(capacity=16, prefetch=4)`` for every audio track: a
frame is handed on only once four later frames have arrived, so every user frame reaches the turn
detector 80 ms late, and every end-of-turn decision with it; even with ``prefetch`` 0 or 1 it waits for
the next packet (20 ms). Measured with ``bench --via webrtc`` (``inbound_ms``). The buffer only reorders
packets (it does not adapt to jitter like a browser's), and an audio packet is always a whole frame.

``SPEECHLM_RTC_JITTER_FRAMES`` sets how many later frames the server waits for. The default, 0, hands
each packet on as it arrives: a packet that skips ahead of a missing one goes on at once, and the
missing one, should it still come, is dropped (20 ms missing from the microphone stream, which the VAD
and the ASR do not notice). 1 or more keeps aiortc's own buffer with that prefetch (4 is aiortc's).
This is the one place that reaches into aiortc: if its internals change, the buffer is left as it is
and a warning says so.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextvars import ContextVar

from .env_settings import env_int

log = logging.getLogger(__name__)

ENV = "SPEECHLM_RTC_JITTER_FRAMES"
DEFAULT_FRAMES = 0
AIORTC_FRAMES = 4
_override: ContextVar[int | None] = ContextVar("speechlm_jitter_frames", default=None)


@contextlib.contextmanager
def aiortc_default_buffer() -> Iterator[None]:
    """Receivers created inside keep aiortc's own 4 frames (the benchmark's client, standing in for a
    browser, must not get the server's setting)."""
    token = _override.set(AIORTC_FRAMES)
    try:
        yield
    finally:
        _override.reset(token)


def receive_jitter_frames() -> int:
    """The configured number of frames (``SPEECHLM_RTC_JITTER_FRAMES``), at least 0."""
    return env_int(ENV, DEFAULT_FRAMES, minimum=0)


def apply_receive_jitter_frames(frames: int | None = None) -> bool:
    """Make aiortc's audio receivers (created from now on) wait for ``frames`` later frames instead of 4
    (0: none, each packet goes on as it arrives). Returns whether aiortc could be set up so."""
    frames = receive_jitter_frames() if frames is None else max(0, frames)
    try:
        from aiortc import jitterbuffer, rtcrtpreceiver
        from aiortc.utils import uint16_add
    except ImportError:
        return False
    original, current = jitterbuffer.JitterBuffer, rtcrtpreceiver.JitterBuffer
    if current is not original:
        if isinstance(current, type) and issubclass(current, original) and hasattr(current, "audio_frames"):
            current.audio_frames = frames  # already ours: only the number changes
            return True
        log.warning("aiortc's receiver no longer uses its JitterBuffer as expected; its receive buffer is left as it is")
        return False

    class AudioJitterBuffer(original):  # type: ignore[misc, valid-type]
        """aiortc's buffer with the audio prefetch set by :func:`apply_receive_jitter_frames`."""

        audio_frames = frames

        def __init__(self, capacity: int, prefetch: int = 0, is_video: bool = False) -> None:
            self._at_once = False
            if not is_video and prefetch == AIORTC_FRAMES:
                override = _override.get()
                prefetch = self.audio_frames if override is None else override
                self._at_once = prefetch == 0
            super().__init__(capacity, prefetch=prefetch, is_video=is_video)

        def _remove_frame(self, sequence_number: int) -> jitterbuffer.JitterFrame | None:
            if not self._at_once:
                return super()._remove_frame(sequence_number)
            packet = self._packets[sequence_number % self._capacity]
            self.remove(uint16_add(sequence_number, -self._origin) + 1)  # it, and any gap before it
            return jitterbuffer.JitterFrame(data=packet._data, timestamp=packet.timestamp)

    rtcrtpreceiver.JitterBuffer = AudioJitterBuffer
    return True
