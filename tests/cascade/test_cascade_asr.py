"""faster-whisper on the offline Whisper base weights."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.cascade.asr import ASR, FasterWhisperASR, build_asr
from tests.cascade.conftest import need

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def whisper() -> FasterWhisperASR:
    need("faster_whisper")
    return FasterWhisperASR()


def test_transcribes_a_spoken_question(whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray]) -> None:
    assert isinstance(whisper, ASR)
    text = whisper.transcribe(spoken("What is the capital of France?")).lower()
    assert "capital" in text
    assert "france" in text


def test_silence_and_empty_audio_give_no_words(whisper: FasterWhisperASR) -> None:
    assert whisper.transcribe(np.zeros(0, dtype=np.float32)) == ""
    assert whisper.transcribe(np.zeros(16_000, dtype=np.float32)) == ""


def test_bad_settings_are_reported() -> None:
    need("faster_whisper")
    with pytest.raises(EngineError, match=r"unknown setting.*beam"):
        build_asr({"kind": "faster-whisper", "beam": 3})
    with pytest.raises(EngineError, match="unknown ASR kind"):
        build_asr({"kind": "vosk"})
    with pytest.raises(EngineError, match="could not load Whisper directory"):
        FasterWhisperASR("/")
