"""When the first reply sound is heard: silence sent ahead of it counts; echo plays no pre-roll."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm_demo.engines.base import AudioOut, HalfDuplexEngine, SessionOptions, TurnEnd
from speechlm_demo.engines.echo import without_quiet_head
from tests.engines_for_tests import Recorder, entry, silence, tone

RATE = 16_000


class SilenceFirstEngine(HalfDuplexEngine):
    """Answers with 0.5 s of digital silence, then 0.05 s of near-silence, then a tone (like a TTS with a slow onset)."""

    def respond(self, turn, history, options):
        yield AudioOut(silence(0.5), RATE)
        yield AudioOut(np.concatenate([silence(0.05), tone(0.3)]), RATE)


def test_first_audio_out_is_when_the_first_audible_sample_will_be_heard() -> None:
    rec = Recorder()
    session = SilenceFirstEngine(entry()).open_session(SessionOptions(), rec)
    for piece in np.split(np.concatenate([tone(0.5), silence(0.8)]), 65):
        session.push_audio(piece)
    (end,) = rec.wait_for(TurnEnd)
    emitted = [e for e in rec.of(AudioOut)]
    assert len(emitted) == 2
    marks = end.timeline.marks
    # emitted at once, but heard after the 0.5 s of silence and the 50 ms quiet head of the second chunk
    assert marks["first_audio_out"] - marks["turn_detected"] == pytest.approx(0.55, abs=0.03)
    assert marks["last_audio_out"] - marks["first_audio_out"] == pytest.approx(0.3, abs=0.03)


def test_echo_starts_just_before_the_first_loud_sound() -> None:
    room = np.random.default_rng(0).normal(0, 0.001, int(0.3 * RATE)).astype(np.float32)  # -60 dBFS room tone
    audio = np.concatenate([room, tone(0.5), silence(0.1)])
    trimmed = without_quiet_head(audio, RATE)
    assert len(trimmed) / RATE == pytest.approx(0.05 + 0.5 + 0.1, abs=0.021)
    assert np.array_equal(without_quiet_head(silence(0.2), RATE), silence(0.2))
    assert len(without_quiet_head(np.zeros(5, np.float32), RATE)) == 5
