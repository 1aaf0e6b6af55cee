"""Smart Turn v3 through onnxruntime: the features match Pipecat's own, the verdicts make sense on real speech."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import pytest

from speechlm_demo.audio import AudioError, read_audio, resample
from speechlm_demo.benchmarks.varied_prompts import REAL_CLIPS, real_clip_path
from speechlm_demo.turntaking import smart_turn
from speechlm_demo.turntaking.smart_turn import RATE, SmartTurn, SmartTurnError, features, last_window, locate_model
from tests.conftest import require

HAVE_MODEL = importlib.util.find_spec("pipecat") is not None
needs_model = pytest.mark.skipif(not HAVE_MODEL, reason="pip install --no-deps pipecat-ai==1.14.0")


def model() -> SmartTurn:
    require(None if HAVE_MODEL else "Smart Turn missing: pip install --no-deps pipecat-ai==1.14.0")
    return smart_turn.shared_model()


def beckett() -> np.ndarray:
    path = real_clip_path(REAL_CLIPS[0])
    require(None if path else "real speech missing: pip install --no-deps useful-moonshine-onnx==20251121")
    audio, _ = read_audio(str(path), RATE)
    return audio


def espeak(text: str) -> np.ndarray:
    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)")
    from speechlm_demo.benchmarks.prompt_sets import speak

    return speak(text)


def pipecat_features():
    """Pipecat 1.14.0's own numpy feature extraction (pipecat/audio/turn/smart_turn/_whisper_features.py),
    loaded from its file: it needs only numpy, while importing the pipecat package would pull its whole stack."""
    require(None if HAVE_MODEL else "pip install --no-deps pipecat-ai==1.14.0")
    root = Path(next(iter(importlib.util.find_spec("pipecat").submodule_search_locations)))
    spec = importlib.util.spec_from_file_location("pipecat_whisper_features", root / "audio/turn/smart_turn/_whisper_features.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.compute_whisper_log_mel_features


def test_the_window_is_the_last_8_s_zero_padded_at_the_start() -> None:
    short = np.full(RATE, 0.5, np.float32)
    window = last_window(short)
    assert window.shape == (8 * RATE,) and not window[: 7 * RATE].any() and (window[7 * RATE :] == 0.5).all()
    long = np.arange(10 * RATE, dtype=np.float32) / (10 * RATE)
    assert np.array_equal(last_window(long), long[-8 * RATE :])
    assert last_window(np.ones(48_000, np.float32), 48_000)[-RATE // 2 :].mean() == pytest.approx(1.0, abs=0.01)


def test_bad_audio_is_refused_clearly() -> None:
    with pytest.raises(AudioError, match="NaN"):
        last_window(np.array([0.1, np.nan], np.float32))
    with pytest.raises(AudioError, match="128000"):
        features(np.zeros(1000, np.float32))


def test_features_match_pipecats_own_extraction() -> None:
    reference = pipecat_features()
    clip = beckett()
    clips = [clip, clip[: int(5.2 * RATE)], np.concatenate([clip, clip]), np.zeros(RATE // 2, np.float32)]
    for audio in clips:
        window = last_window(audio)
        ours, theirs = features(window), reference(window)
        assert ours.shape == theirs.shape == (80, 800) and ours.dtype == np.float32
        assert np.abs(ours - theirs).max() < 1e-4  # float32 STFT (faster-whisper) vs float64 (Pipecat)


@needs_model
def test_same_probability_as_with_pipecats_features() -> None:
    reference, st = pipecat_features(), model()
    window = last_window(beckett()[: int(3.0 * RATE)])
    theirs = float(st._session.run(None, {"input_features": reference(window)[None]})[0].ravel()[0])
    assert st.probability(beckett()[: int(3.0 * RATE)]) == pytest.approx(theirs, abs=1e-4)


def test_real_speech_complete_at_its_end_incomplete_cut_mid_sentence() -> None:
    st, clip = model(), beckett()
    assert st.is_complete(clip)  # "... Fail again. Fail better." and room tone
    # cut inside "Try again" (the fourth sentence, 4.90-5.57 s): the voice is mid-word
    assert st.probability(clip[: int(5.2 * RATE)]) < 0.2
    # the same clip at 48 kHz (resampled inside) gives the same verdicts
    assert st.is_complete(resample(clip, RATE, 48_000), 48_000)


def test_espeak_question_scores_above_its_unfinished_start() -> None:
    st = model()
    tail = np.zeros(RATE // 5, np.float32)
    complete = st.probability(np.concatenate([espeak("What is the capital of France?"), tail]))
    unfinished = st.probability(np.concatenate([espeak("What is the"), tail]))
    # Only the order is asserted: the int8 model's probabilities on synthetic speech move between machines
    # ("What is the": under 0.5 on the machines before 2026-12-03, 0.84 on an AVX2-only AMD EPYC VM).
    assert complete > 0.5 and complete > unfinished


def test_missing_package_or_damaged_model_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = tmp_path / "smart-turn-v3.2-cpu.onnx"
    broken.write_bytes(b"not a model")
    with pytest.raises(SmartTurnError, match="could not be loaded"):
        SmartTurn(broken)
    monkeypatch.setattr(smart_turn.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(SmartTurnError, match="pip install --no-deps pipecat-ai==1.14.0"):
        locate_model()
