"""faster-whisper on the offline Whisper base weights."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

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


class _GenerateSpy:
    """Wraps the CTranslate2 model and counts decoder runs."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.generated = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.generated += 1
        return self._model.generate(*args, **kwargs)


def test_a_cancelled_turn_skips_the_decoder(
    whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _GenerateSpy(whisper._model.model)
    monkeypatch.setattr(whisper._model, "model", spy)
    audio = spoken("What is the capital of France?")
    cancel = threading.Event()
    assert "france" in whisper.transcribe(audio, cancel).lower()
    cancel.set()
    assert whisper.transcribe(audio, cancel) == ""
    assert spy.generated == 1


def test_a_shorter_encoder_window_hears_the_same_words(
    whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray]
) -> None:
    short = FasterWhisperASR(min_window_s=8.0)
    assert short.min_window_frames == 800 and whisper.min_window_frames == 1000
    for text in ("What is the capital of France?", "Why is the sky blue?"):
        audio = spoken(text)
        assert short.transcribe(audio) == whisper.transcribe(audio)
