"""Comfort silence on the WebRTC output while a half-duplex session has nothing to play.

FastRTC's output track sends nothing while ``emit()`` waits, and RTP timestamps count the samples sent,
not time: after a pause between replies a receiver's adaptive jitter buffer (a browser's NetEq) takes
the reply's first packet for one that came seconds late and starts it from a cold, widened buffer, and
aiortc's fixed 4-frame buffer keeps the previous reply's last 80 ms until new packets push them out, to
play just before the next reply. Sending 20 ms frames of silence whenever the stream runs dry keeps the
receiver's clock running.

Silence must never hold reply audio back. :class:`IdlePacer` follows FastRTC's real-time pacing (a
frame goes out at its position in the stream after the first frame, a clock that restarts when the
queue is cleared or after a gap): a silence frame is due only once everything handed on has had its
time to play, plus :attr:`IdlePacer.late_s`, so silence never waits in FastRTC's queue and never runs
more than one frame ahead of the wall clock; reply audio that exists goes out next, and waits on
FastRTC's pacing for at most ``frame_s - late_s`` behind the silence frame being played.

``SPEECHLM_RTC_IDLE_SILENCE``: ``1`` sends silence while a half-duplex session is idle, ``0`` (default)
sends nothing (FastRTC's own behaviour). Off by default: on the 2-core CI machine it made the aiortc bench's
voice-to-voice 15-18 ms longer for echo (the reply waits for the silence frame in play) and 30-77 ms for
the cascade (encoding 50 silent frames a second competes with the engine), while Chromium's gain (a median
of -35 to -48 ms over noisy page measurements) was not established. Full-duplex engines stream their own
audio, silence included, and never get it.
"""

from __future__ import annotations

from .env_settings import env_flag

ENV = "SPEECHLM_RTC_IDLE_SILENCE"
DEFAULT = False


def idle_silence_enabled() -> bool:
    """The configured setting (``SPEECHLM_RTC_IDLE_SILENCE``, an on/off flag: see :func:`.env_settings.env_flag`)."""
    return env_flag(ENV, DEFAULT)


class IdlePacer:
    """When the next frame of silence is due, from what was handed to FastRTC and when (``time`` in
    seconds on any monotonic clock). Not thread-safe: the handler's event loop owns it.

    ``late_s``: how long after the stream ran dry a silence frame goes. FastRTC sends a frame whose time
    has passed at once, so the silence goes out as it is handed; a reply handed on after it finds the
    next slot of FastRTC's clock at most ``frame_s - late_s`` away (the slot after a frame handed on
    time would be up to ``frame_s`` away). Below ``frame_s``, so that timer wake-ups a few ms late keep
    the silence at the real-time rate instead of restarting the clock.
    """

    def __init__(self, frame_s: float = 0.02, late_s: float = 0.015) -> None:
        if not 0 <= late_s < frame_s:
            raise ValueError("late_s must be in [0, frame_s)")
        self.frame_s = frame_s
        self.late_s = late_s
        self._dry_at: float | None = None  # when everything handed on has played; None: FastRTC's clock restarts

    def restart(self) -> None:
        """FastRTC's pacing restarts (its queue was cleared): the next frame goes at once."""
        self._dry_at = None

    def due_in(self, now: float) -> float:
        """Seconds until a silence frame is due (<= 0: now)."""
        return 0.0 if self._dry_at is None else self._dry_at + self.late_s - now

    def handed(self, seconds: float, now: float) -> None:
        """``seconds`` of audio (reply or silence) were handed to FastRTC at ``now``."""
        if self._dry_at is None or now - self._dry_at > self.frame_s + self.late_s:
            self._dry_at = now + seconds  # a stall, or a restart: the piece starts a new run, as FastRTC does
        else:
            self._dry_at += seconds
