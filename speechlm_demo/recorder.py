"""Record spoken turns from a WebRTC microphone, for tabs that send one turn to several engines.

:class:`TurnRecorder` is a FastRTC handler that talks to no engine: it cuts the incoming audio into user
turns with the same :class:`~speechlm_demo.turntaking.detector.TurnDetector` the engines use (energy VAD, a longer
end-of-turn silence since nobody answers live) and publishes each finished turn, plus status lines, as
``AdditionalOutputs``. The audio stays on the server; the UI gets a :class:`RecordedTurn`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass

import numpy as np
from fastrtc import AdditionalOutputs, AsyncStreamHandler

from .audio import AudioError, StreamResampler, check_sample_rate, to_mono_float32
from .turntaking.detector import SpeechStarted, TurnClosed, TurnDetector, TurnSettings
from .turntaking.voice_activity import EnergyVAD

log = logging.getLogger(__name__)

RATE = 16_000
SETTINGS = TurnSettings(min_speech_ms=200.0, pause_ms=600.0, end_silence_ms=800.0, max_turn_s=30.0)
_ids = itertools.count(1)


@dataclass(frozen=True)
class RecordedTurn:
    """One user turn: mono float32 ``audio`` at ``sample_rate``; ``truncated`` when cut at the length limit."""

    turn_id: int
    audio: np.ndarray
    sample_rate: int
    truncated: bool = False

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return len(self.audio) / self.sample_rate


def describe(turn: RecordedTurn) -> str:
    """A short status line for the UI."""
    cut = f" (cut at {SETTINGS.max_turn_s:.0f} s)" if turn.truncated else ""
    return f"Recorded {turn.duration_s:.1f} s of speech{cut}."


class TurnRecorder(AsyncStreamHandler):
    """One WebRTC connection whose microphone turns are recorded, never answered live.

    ``emit`` yields ``AdditionalOutputs(status: str, turn: RecordedTurn | None)``.
    """

    def __init__(self, settings: TurnSettings = SETTINGS) -> None:
        super().__init__(expected_layout="mono", output_sample_rate=24_000, input_sample_rate=48_000)
        self.settings = settings
        self._queue: asyncio.Queue[AdditionalOutputs] = asyncio.Queue()
        self._to_vad_rate = StreamResampler(RATE)  # not ``_resampler``: fastrtc's base class owns that name
        self._detector = TurnDetector(EnergyVAD.for_rate(RATE), settings)
        self._bad_frames = 0

    def copy(self) -> TurnRecorder:
        """A fresh recorder per connection (fastrtc calls this)."""
        return TurnRecorder(self.settings)

    async def start_up(self) -> None:
        """Connected: say so."""
        self._publish("🎙️ Microphone on: ask something, then pause.")

    async def receive(self, frame: tuple[int, np.ndarray]) -> None:
        """Feed one browser frame to the turn detector; unusable frames are counted and reported."""
        try:
            rate, samples = frame
            pcm = self._to_vad_rate(to_mono_float32(samples), check_sample_rate(rate))
        except AudioError as exc:
            self._bad_frames += 1
            if self._bad_frames in (1, 100) or self._bad_frames % 1000 == 0:
                self._publish(f"⚠️ Ignored unusable microphone audio ({self._bad_frames}x): {exc}")
            return
        for decision in self._detector.push(pcm):
            if isinstance(decision, SpeechStarted):
                self._publish("👂 Listening…")
            elif isinstance(decision, TurnClosed):
                turn = RecordedTurn(next(_ids), decision.audio, RATE, decision.truncated)
                log.info("recorded turn %d: %.1f s", turn.turn_id, turn.duration_s)
                self._publish(describe(turn), turn)

    async def emit(self) -> AdditionalOutputs:
        """The next status or recorded turn (waits until there is one)."""
        return await self._queue.get()

    def shutdown(self) -> None:
        """Connection closed: an unfinished turn is dropped."""
        self._detector = TurnDetector(EnergyVAD.for_rate(RATE), self.settings)

    def _publish(self, status: str, turn: RecordedTurn | None = None) -> None:
        self._queue.put_nowait(AdditionalOutputs(status, turn))
