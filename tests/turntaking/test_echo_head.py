"""Echo plays no pre-roll: the turn's room tone before the first loud sound would only delay the echo."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm_demo.engines.echo import without_quiet_head
from tests.engines_for_tests import silence, tone

RATE = 16_000


def test_echo_starts_just_before_the_first_loud_sound() -> None:
    room = np.random.default_rng(0).normal(0, 0.001, int(0.3 * RATE)).astype(np.float32)  # -60 dBFS room tone
    audio = np.concatenate([room, tone(0.5), silence(0.1)])
    trimmed = without_quiet_head(audio, RATE)
    assert len(trimmed) / RATE == pytest.approx(0.05 + 0.5 + 0.1, abs=0.002)
    assert np.array_equal(without_quiet_head(silence(0.2), RATE), silence(0.2))
    assert len(without_quiet_head(np.zeros(5, np.float32), RATE)) == 5
