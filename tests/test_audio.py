"""PCM helpers: conversions, resampling, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm_demo import audio


def test_int16_mono_scales_to_unit_range() -> None:
    pcm = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    out = audio.to_mono_float32(pcm)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, [0.0, 0.5, -1.0, 32767 / 32768], atol=1e-6)


def test_stereo_either_layout_is_averaged() -> None:
    left = np.full(480, 0.5, dtype=np.float32)
    right = np.zeros(480, dtype=np.float32)
    channels_first = np.stack([left, right])
    np.testing.assert_allclose(audio.to_mono_float32(channels_first), 0.25)
    np.testing.assert_allclose(audio.to_mono_float32(channels_first.T), 0.25)


def test_uint8_and_int32() -> None:
    np.testing.assert_allclose(audio.to_mono_float32(np.array([128, 255, 0], np.uint8)), [0, 127 / 128, -1], atol=1e-6)
    assert audio.to_mono_float32(np.array([2**30], np.int32))[0] == pytest.approx(0.5)


def test_nan_and_inf_become_silence_and_loud_floats_are_clipped() -> None:
    out = audio.to_mono_float32(np.array([np.nan, np.inf, -np.inf, 3.0, -2.0], np.float32))
    np.testing.assert_array_equal(out, [0, 0, 0, 1, -1])


@pytest.mark.parametrize(
    "bad, words",
    [
        (np.array(["a", "b"]), "sample type"),
        (np.float32(1.0), "single number"),
        (np.zeros((2, 2, 2), np.float32), "dimensions"),
        (np.zeros((40, 100), np.float32), "channels"),
        (object(), "sample type"),
    ],
)
def test_unusable_arrays_raise_audio_error(bad: object, words: str) -> None:
    with pytest.raises(audio.AudioError, match=words):
        audio.to_mono_float32(bad)


@pytest.mark.parametrize("rate", [0, -16000, 1e9, "fast", 16000.5])
def test_implausible_sample_rates_are_refused(rate: object) -> None:
    with pytest.raises(audio.AudioError):
        audio.check_sample_rate(rate)  # type: ignore[arg-type]


def test_resample_keeps_duration_and_frequency() -> None:
    t = np.arange(48000) / 48000
    tone = np.sin(2 * np.pi * 440 * t).astype(np.float32)
    out = audio.resample(tone, 48000, 16000)
    assert len(out) == 16000
    spectrum = np.abs(np.fft.rfft(out))
    assert abs(np.argmax(spectrum) * 16000 / len(out) - 440) < 2


def test_stream_resampler_matches_whole_buffer_length() -> None:
    rs = audio.StreamResampler(16000)
    tone = np.sin(np.arange(48000) / 10).astype(np.float32)
    pieces = [rs(chunk, 48000) for chunk in audio.chunks(tone, 960)]
    total = sum(len(p) for p in pieces)
    assert 15000 < total <= 16000  # streaming holds back a few ms of filter delay
    same_rate = audio.StreamResampler(16000)
    assert same_rate(tone[:100], 16000) is not None and len(same_rate(tone[:100], 16000)) == 100


def test_wav_round_trip_and_garbage_bytes() -> None:
    tone = (0.5 * np.sin(np.arange(1600) / 5)).astype(np.float32)
    decoded, rate = audio.decode_audio(audio.encode_wav(tone, 16000))
    assert rate == 16000
    np.testing.assert_allclose(decoded, tone, atol=1e-3)
    with pytest.raises(audio.AudioError, match="decode"):
        audio.decode_audio(b"definitely not audio")
    with pytest.raises(audio.AudioError, match="empty"):
        audio.decode_audio(b"")


def test_levels() -> None:
    assert audio.rms_dbfs(np.zeros(100, np.float32)) == -120.0
    assert audio.rms_dbfs(np.array([], np.float32)) == -120.0
    assert audio.rms_dbfs(np.ones(100, np.float32)) == pytest.approx(0.0, abs=1e-6)


def test_loud_span_finds_the_first_and_last_loud_windows() -> None:
    rate = 16_000
    samples = np.zeros(rate, np.float32)
    samples[4_000:9_000] = 0.1  # -20 dBFS, from 0.25 s to 0.5625 s
    assert audio.loud_span(samples, rate, -40.0) == (3_840, 9_280)  # whole 20 ms windows around it
    samples[-100:] = 0.1  # a loud short last window: the span ends with the audio
    assert audio.loud_span(samples, rate, -40.0) == (3_840, rate)
    assert audio.loud_span(np.zeros(rate, np.float32), rate, -40.0) is None
    assert audio.loud_span(np.zeros(0, np.float32), rate, -40.0) is None


def test_match_level_sets_rms_and_never_clips() -> None:
    quiet = (0.01 * np.sin(np.linspace(0, 200, 16_000))).astype(np.float32)
    assert abs(audio.rms_dbfs(audio.match_level(quiet)) + 23.0) < 0.1
    spiky = np.zeros(16_000, np.float32)
    spiky[100] = 0.5
    assert np.abs(audio.match_level(spiky)).max() <= 0.95 + 1e-6
    assert not audio.match_level(np.zeros(100, np.float32)).any() and len(audio.match_level(np.zeros(0, np.float32))) == 0
