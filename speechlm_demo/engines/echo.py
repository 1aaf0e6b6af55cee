"""Echo: a diagnostic engine that plays the user's turn back, to check the audio path and latency."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..audio import chunks, loud_span
from ..turntaking.half_duplex import HalfDuplexEngine
from .base import AudioOut, Event, SessionOptions, TextOut, UserTurn

HEAD_DB = 40.0  # the reply starts at the first 20 ms within this many dB of the turn's loudest
HEAD_MARGIN_S = 0.05  # ... less this much, so a soft onset is kept


def without_quiet_head(audio: np.ndarray, rate: int) -> np.ndarray:
    """``audio`` from just before its first window within ``HEAD_DB`` of its loudest (the turn's pre-roll is
    room tone: played back, it would only delay the echo)."""
    window = max(1, rate // 50)
    usable = len(audio) // window * window
    if not usable:
        return audio
    power = np.square(audio[:usable].astype(np.float64)).reshape(-1, window).mean(axis=1)
    floor_db = 10 * np.log10(power.max() + 1e-24) - HEAD_DB
    span = loud_span(audio, rate, floor_db)
    if span is None:
        return audio
    # the first sample of that window to reach the level, so the margin is exact (not up to a window more)
    first = audio[span[0] : span[0] + window]
    onset = span[0] + int(np.argmax(np.abs(first) >= 10 ** (floor_db / 20)))
    return audio[max(0, onset - int(HEAD_MARGIN_S * rate)) :]


class EchoEngine(HalfDuplexEngine):
    """Replies with the user's own audio from just before its first loud sound, in 100 ms chunks, as soon as
    the turn ends."""

    def respond(
        self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions
    ) -> Iterator[Event]:
        """Yield the turn's audio back; the transcript notes its length."""
        yield TextOut(f"(echo of {turn.duration_s:.1f} s of your speech)", role="agent")
        for piece in chunks(without_quiet_head(turn.audio, turn.sample_rate), max(1, turn.sample_rate // 10)):
            if turn.cancel.is_set():
                return
            yield AudioOut(piece, turn.sample_rate)
