"""Round-trip intelligibility with the cascade's Whisper base: a clean reply gets a low WER, a garbled one a
high WER."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm_demo.judges.roundtrip import RoundTrip
from tests.support.speech import speak

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("espeak")]

TEXT = "The weather today is sunny and warm, a good day for a walk in the park."


@pytest.fixture(scope="module")
def roundtrip() -> RoundTrip:
    return RoundTrip()


def test_clean_reply_is_understood_and_garbled_reply_is_not(roundtrip: RoundTrip) -> None:
    speech = speak(TEXT, 22_050)
    clean = roundtrip.judge(speech, 22_050, TEXT)
    assert clean["roundtrip_wer"] is not None and clean["roundtrip_wer"] <= 0.3, clean
    rng = np.random.default_rng(1)
    pieces = np.array_split(speech, 40)
    garbled = np.concatenate([pieces[i][::-1] for i in rng.permutation(len(pieces))])  # shuffled, reversed 50 ms pieces
    bad = roundtrip.judge(garbled, 22_050, TEXT)
    assert bad["roundtrip_wer"] >= 0.8, bad
    other = roundtrip.judge(speak("Seven green bottles standing on the wall.", 16_000), 16_000, TEXT)
    assert other["roundtrip_wer"] >= 0.8, other  # says something else than the engine claims


def test_no_reference_or_no_audio(roundtrip: RoundTrip) -> None:
    assert roundtrip.judge(speak("Hello there.", 16_000), 16_000, "")["roundtrip_wer"] is None
    silent = roundtrip.judge(np.zeros(0, np.float32), 16_000, TEXT)
    assert silent["asr_text"] == "" and silent["roundtrip_wer"] == 1.0
