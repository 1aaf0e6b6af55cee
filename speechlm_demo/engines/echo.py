"""Echo: a diagnostic engine that plays the user's turn back, to check the audio path and latency."""

from __future__ import annotations

from collections.abc import Iterator

from ..audio import chunks
from ..turntaking.half_duplex import HalfDuplexEngine
from .base import AudioOut, Event, SessionOptions, TextOut, UserTurn


class EchoEngine(HalfDuplexEngine):
    """Replies with the user's own audio, in 100 ms chunks, as soon as the turn ends."""

    def respond(
        self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions
    ) -> Iterator[Event]:
        """Yield the turn's audio back; the transcript notes its length."""
        yield TextOut(f"(echo of {turn.duration_s:.1f} s of your speech)", role="agent")
        for piece in chunks(turn.audio, max(1, turn.sample_rate // 10)):
            if turn.cancel.is_set():
                return
            yield AudioOut(piece, turn.sample_rate)
