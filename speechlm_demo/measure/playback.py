"""Where reply audio is heard: the one placement of output chunks on a playback clock, with their audible part.

A chunk starts playing when it arrives or when what is queued before it ends, whichever is later; an
interrupt empties the queue. Its audible part runs from the first to the last window louder than the
engine's ``audible_dbfs`` (:func:`~speechlm_demo.audio.audible_span`). The observer
(:mod:`.observer`) places every reply chunk this way; a full-duplex session places its agent's chunks once
and its turn tracker reads the result (:mod:`speechlm_demo.turntaking.full_duplex`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import SILENT_DBFS, audible_span


@dataclass(frozen=True)
class Played:
    """One chunk on the playback clock (clock seconds)."""

    start: float
    end: float
    audible: tuple[float, float] | None  # first / last audible instant; None when the chunk is silent


class PlaybackClock:
    """Not thread-safe: its owner serialises calls."""

    def __init__(self, audible_dbfs: float = SILENT_DBFS) -> None:
        self.audible_dbfs = audible_dbfs
        self.end = 0.0  # when what is queued stops playing

    def place(self, pcm: np.ndarray, sample_rate: int, t: float) -> Played:
        """Queue a chunk that arrived at ``t``."""
        start = max(t, self.end)
        self.end = start + len(pcm) / sample_rate
        span = audible_span(pcm, sample_rate, self.audible_dbfs) if len(pcm) else None
        audible = None if span is None else (start + span[0] / sample_rate, start + span[1] / sample_rate)
        return Played(start, self.end, audible)

    def interrupt(self, t: float) -> None:
        """Playback was flushed at ``t``: the next chunk plays as it arrives."""
        self.end = t
