"""Voice activity models: the protocol the turn-taking layer needs, and a dependency-free energy VAD.

Like fastrtc's ``PauseDetectionModel``, a VAD is any object with this small surface; Silero (the
cascade's default) and the energy model below both satisfy it.
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np

from ..audio import rms_dbfs


@runtime_checkable
class VoiceActivityModel(Protocol):
    """Speech probability for fixed windows of mono float32 audio."""

    sample_rate: int
    window: int

    def speech_probability(self, window: np.ndarray) -> float:
        """Probability in [0, 1] that ``window`` (exactly :attr:`window` samples) contains speech."""
        ...

    def reset(self) -> None:
        """Forget state between streams."""
        ...


class EnergyVAD:
    """Level-based VAD with an adaptive noise floor. Needs no weights; fine for clean microphones."""

    @classmethod
    def for_rate(cls, rate: int) -> EnergyVAD:
        """The default energy VAD at ``rate``: windows of 1/32 s."""
        return cls(sample_rate=rate, window=rate // 32)

    def __init__(
        self,
        sample_rate: int = 16_000,
        window: int = 512,
        margin_db: float = 14.0,
        floor_db: float = -62.0,
        absolute_min_db: float = -50.0,
    ) -> None:
        self.sample_rate = sample_rate
        self.window = window
        self.margin_db = margin_db
        self.initial_floor_db = floor_db
        self.absolute_min_db = absolute_min_db
        self.noise_floor_db = floor_db

    def speech_probability(self, window: np.ndarray) -> float:
        """Sigmoid of the level above max(noise floor + margin, absolute minimum); the level of the window without
        its mean (a microphone's DC offset is no sound)."""
        samples = np.asarray(window, dtype=np.float32)
        level = rms_dbfs(samples - samples.mean() if samples.size else samples)
        threshold = max(self.noise_floor_db + self.margin_db, self.absolute_min_db)
        probability = 1.0 / (1.0 + math.exp(-(level - threshold) / 2.0))
        # The floor follows quiet windows quickly and loud ones very slowly.
        rate = 0.1 if level < self.noise_floor_db else 0.002
        self.noise_floor_db += rate * (level - self.noise_floor_db)
        return probability

    def reset(self) -> None:
        """Back to the initial noise floor."""
        self.noise_floor_db = self.initial_floor_db
