"""Silero VAD through onnxruntime + numpy."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from speechlm_demo.audio import AudioError
from speechlm_demo.engines.cascade.silero import SileroVAD
from speechlm_demo.turntaking.voice_activity import VoiceActivityModel


def probabilities(vad: SileroVAD, audio: np.ndarray) -> np.ndarray:
    usable = len(audio) - len(audio) % vad.window
    return np.array([vad.speech_probability(w) for w in audio[:usable].reshape(-1, vad.window)])


@pytest.fixture(scope="module")
def vad() -> SileroVAD:
    return SileroVAD()


def test_satisfies_the_turn_layer_protocol(vad: SileroVAD) -> None:
    assert isinstance(vad, VoiceActivityModel)
    assert (vad.sample_rate, vad.window) == (16_000, 512)


def test_speech_is_likely_and_silence_is_not(vad: SileroVAD, spoken: Callable[..., np.ndarray]) -> None:
    vad.reset()
    silence = probabilities(vad, np.zeros(16_000, dtype=np.float32))
    speech = probabilities(vad, spoken("The quick brown fox jumps over the lazy dog."))
    noise = probabilities(vad, np.random.default_rng(0).normal(0, 0.003, 16_000).astype(np.float32))
    assert silence.max() < 0.1
    assert noise.max() < 0.5
    assert speech.max() > 0.9
    assert (speech > 0.5).mean() > 0.5


def test_reset_makes_results_repeatable(vad: SileroVAD, spoken: Callable[..., np.ndarray]) -> None:
    clip = spoken("Hello there")
    vad.reset()
    first = probabilities(vad, clip)
    vad.reset()
    np.testing.assert_allclose(probabilities(vad, clip), first, atol=1e-6)


def test_wrong_window_size_is_refused(vad: SileroVAD) -> None:
    with pytest.raises(AudioError, match="512"):
        vad.speech_probability(np.zeros(480, dtype=np.float32))


@pytest.mark.slow
def test_matches_the_wheels_own_torch_wrapper(vad: SileroVAD, spoken: Callable[..., np.ndarray]) -> None:
    torch = pytest.importorskip("torch")
    from silero_vad.utils_vad import OnnxWrapper

    from speechlm_demo.engines.cascade.weights import silero_vad_onnx

    reference = OnnxWrapper(str(silero_vad_onnx()), force_onnx_cpu=True)
    clip = spoken("Testing one two three")
    clip = clip[: len(clip) - len(clip) % 512]
    expected = [float(reference(torch.from_numpy(w.copy()), 16_000)) for w in clip.reshape(-1, 512)]
    vad.reset()
    np.testing.assert_allclose(probabilities(vad, clip), expected, atol=1e-5)
