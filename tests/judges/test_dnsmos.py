"""DNSMOS from the speechmos wheel's ONNX models: equal to the package's own reference, and it orders clean
speech above the same speech in heavy noise or clipped."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm_demo.judges.dnsmos import Dnsmos
from tests.support.speech import speak

pytestmark = pytest.mark.usefixtures("espeak")

SENTENCE = "The quick brown fox jumps over the lazy dog, and then it runs back into the forest before night falls."


@pytest.fixture(scope="module")
def dnsmos() -> Dnsmos:
    return Dnsmos()


@pytest.fixture(scope="module")
def clean() -> np.ndarray:
    return (0.5 * speak(SENTENCE, 16_000) / np.abs(speak(SENTENCE, 16_000)).max()).astype(np.float32)


def noisy(clean: np.ndarray, snr_db: float = 0.0) -> np.ndarray:
    noise = np.random.default_rng(0).normal(size=clean.size).astype(np.float32)
    noise *= np.sqrt(np.mean(clean**2) / np.mean(noise**2)) / 10 ** (snr_db / 20)
    return np.clip(clean + noise, -1, 1).astype(np.float32)


def clipped(clean: np.ndarray, gain: float = 30.0) -> np.ndarray:
    return np.clip(clean * gain, -1, 1).astype(np.float32)


def test_scores_equal_the_reference_implementation(dnsmos: Dnsmos, clean: np.ndarray) -> None:
    from speechmos import dnsmos as reference

    long_clip = np.concatenate([clean, noisy(clean, 10.0), clean])  # > 9.01 s: several windows
    for clip in (clean, noisy(clean), long_clip):
        ours = dnsmos.score(clip, 16_000)
        theirs = reference.run(clip, sr=16_000)
        for name, key in (("sig", "sig_mos"), ("bak", "bak_mos"), ("ovrl", "ovrl_mos"), ("p808", "p808_mos")):
            assert getattr(ours, name) == pytest.approx(float(theirs[key]), abs=1e-4), name


def test_clean_speech_beats_noisy_and_clipped(dnsmos: Dnsmos, clean: np.ndarray) -> None:
    good = dnsmos.score(clean, 16_000)
    loud_noise = dnsmos.score(noisy(clean), 16_000)
    distorted = dnsmos.score(clipped(clean), 16_000)
    assert 1.0 <= loud_noise.ovrl < good.ovrl <= 5.0 and loud_noise.bak < good.bak - 1.0
    assert distorted.ovrl < good.ovrl - 0.2 and distorted.p808 < good.p808  # (SIG barely moves for a formant voice)


def test_any_rate_is_resampled_and_bad_input_is_refused(dnsmos: Dnsmos, clean: np.ndarray) -> None:
    from speechlm_demo.audio import resample

    at_24k = dnsmos.score(resample(clean, 16_000, 24_000), 24_000)
    assert at_24k.ovrl == pytest.approx(dnsmos.score(clean, 16_000).ovrl, abs=0.15)
    with pytest.raises(ValueError, match="non-empty"):
        dnsmos.score(np.zeros(0, np.float32), 16_000)
    nan_clip = clean.copy()
    nan_clip[::100] = np.nan
    assert 1.0 <= dnsmos.score(nan_clip, 16_000).ovrl <= 5.0
