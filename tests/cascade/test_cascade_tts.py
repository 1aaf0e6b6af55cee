"""Piper (offline voice from PyPI) and the espeak-ng fallback."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.cascade.tts import TTS, EspeakTTS, PiperTTS
from speechlm_demo.engines.cascade.tts_kinds import build_tts
from tests.cascade.conftest import need


@pytest.mark.slow
def test_piper_speaks_at_22050_hz() -> None:
    need("piper")
    piper = PiperTTS()
    assert isinstance(piper, TTS)
    assert piper.sample_rate == 22_050
    chunks = list(piper.synthesize("Paris is the capital of France. It is lovely."))
    assert len(chunks) == 2  # one per sentence
    audio = np.concatenate(chunks)
    assert audio.dtype == np.float32
    assert 1.5 < len(audio) / piper.sample_rate < 8
    assert rms_dbfs(audio) > -30
    assert list(piper.synthesize("   ")) == []
    made = []
    voice = piper._voice
    make = voice.phoneme_ids_to_audio
    voice.phoneme_ids_to_audio = lambda *args, **kwargs: made.append(1) or make(*args, **kwargs)  # type: ignore[method-assign]
    cancel = threading.Event()
    sentences = piper.synthesize("One sentence. Another sentence. A third one.", cancel)
    assert rms_dbfs(next(sentences)) > -30
    cancel.set()  # a barge-in after the first sentence: no more sentences are synthesised
    assert list(sentences) == [] and len(made) == 1
    assert list(piper.synthesize("Cancelled before it starts.", cancel)) == [] and len(made) == 1


def test_espeak_needs_no_weights() -> None:
    espeak = build_tts({"kind": "espeak", "voice": "offline"})
    assert isinstance(espeak, EspeakTTS)
    (audio,) = espeak.synthesize("-Hello world")  # a leading dash is text, not an option
    assert len(audio) / espeak.sample_rate > 0.5
    assert rms_dbfs(audio) > -30


def test_tts_errors_are_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("piper")
    with pytest.raises(EngineError, match=r"Piper voice file\(s\) not found: .*nope.onnx"):
        PiperTTS(str(tmp_path / "nope.onnx"))
    with pytest.raises(EngineError, match="unknown TTS kind"):
        build_tts({"kind": "festival"})
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(EngineError, match="apt install espeak-ng"):
        EspeakTTS()
