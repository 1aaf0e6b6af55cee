"""The judge models are loaded once per process and shared by every ``Judges`` (vote worker, Compare tab); the
helper that loads them once is tested in tests/test_load_once.py."""

from __future__ import annotations

import pytest

from speechlm_demo.judges.scorer import Judges
from tests.support.speech import speak


@pytest.mark.slow
@pytest.mark.usefixtures("espeak")
def test_two_judges_score_with_one_copy_of_the_models() -> None:
    text = "The weather today is sunny and warm, a good day for a walk in the park."
    speech = speak(text, 16_000)
    votes, compare = Judges(), Judges()
    first, second = votes.score(speech, 16_000, text), compare.score(speech, 16_000, text)
    assert first["error"] == second["error"] == ""
    # the same score from both; the bound only says the recogniser heard the sentence (Whisper base's int8 kernels
    # differ by CPU: 0.312 here, "a good May for it walking the park", on a machine where it used to be under 0.3)
    assert first["roundtrip_wer"] == second["roundtrip_wer"] and first["roundtrip_wer"] <= 0.5
    assert first["dnsmos_ovrl"] == second["dnsmos_ovrl"] and 1.0 <= first["dnsmos_ovrl"] <= 5.0
    assert votes._roundtrip.asr is compare._roundtrip.asr
    assert votes._mos() is compare._mos()
