"""Signal judges on signals whose answers are known, and the identity-name matcher."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm_demo.judges.acoustics import clipped_fraction, integrated_loudness, signal_judges, words_per_minute
from speechlm_demo.judges.identity import catalogue_names, named
from speechlm_demo.judges.latency import latency_judges

RATE = 48_000


def sine(seconds: float, amplitude: float, rate: int = RATE, hz: float = 997.0) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * hz * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def test_loudness_of_a_sine_matches_bs1770() -> None:
    # BS.1770: a 997 Hz sine at full scale reads -3.01 LUFS (mono); 0.1 of full scale is 20 dB lower
    assert integrated_loudness(sine(3.0, 1.0), RATE) == pytest.approx(-3.01, abs=0.05)
    assert integrated_loudness(sine(3.0, 0.1, 16_000), 16_000) == pytest.approx(-23.01, abs=0.1)
    assert integrated_loudness(np.zeros(RATE, np.float32), RATE) is None  # all below the absolute gate
    assert integrated_loudness(sine(0.1, 0.5), RATE) is None  # shorter than one 400 ms block


def test_duration_leading_silence_clipping() -> None:
    audio = np.concatenate([np.zeros(int(0.35 * RATE), np.float32), sine(1.0, 0.3)])
    judged = signal_judges(audio, RATE)
    assert judged["duration_s"] == pytest.approx(1.35)
    assert judged["leading_silence_ms"] == pytest.approx(340.0, abs=20.0)
    assert judged["speech_s"] == pytest.approx(1.0, abs=0.03)
    assert judged["clipping"] == 0.0 and judged["peak_dbfs"] == pytest.approx(20 * np.log10(0.3), abs=0.1)
    hard = np.clip(sine(1.0, 3.0), -1, 1)
    assert clipped_fraction(hard) > 0.5
    lone_peak = np.zeros(1000, np.float32)
    lone_peak[10] = 1.0
    assert clipped_fraction(lone_peak) == 0.0
    silent = signal_judges(np.zeros(RATE, np.float32), RATE)
    assert silent["leading_silence_ms"] is None and silent["loudness_lufs"] is None and silent["speech_s"] == 0.0
    empty = signal_judges(np.zeros(0, np.float32), RATE)
    assert empty["duration_s"] == 0.0 and empty["peak_dbfs"] is None


def test_speaking_rate_and_latency_figures() -> None:
    assert words_per_minute("one two three four five", 2.0) == 150.0
    assert words_per_minute("", 2.0) is None and words_per_minute("hi", 0.0) is None
    legacy = latency_judges({"metrics": {"voice_to_voice_ms": 640.5, "turn_detect_ms": 300}})  # before metrics named origins
    assert legacy == {"voice_to_voice_ms": 640.5, "voice_to_voice_from": "reference_speech_end", "engine_response_ms": None, "turn_detect_ms": 300.0}
    assert latency_judges(None)["voice_to_voice_ms"] is None and latency_judges(None)["voice_to_voice_from"] is None


def test_the_judges_voice_to_voice_starts_where_the_leaderboards_does() -> None:
    from speechlm_demo.timeline import LATENCY_FROM, Timeline

    timeline = Timeline(clock=lambda: 0.0)
    for name, t in (("reference_speech_end", 10.0), ("user_speech_end", 10.2), ("first_audio_out", 10.9)):
        timeline.mark(name, t)
    figures = latency_judges(timeline.to_dict())
    assert figures["voice_to_voice_ms"] == 900.0 and figures["voice_to_voice_from"] == LATENCY_FROM == "reference_speech_end"
    live = Timeline(clock=lambda: 0.0)  # no reference (a live turn): the turn layer's figure, labelled as such
    live.mark("user_speech_end", 1.0)
    live.mark("first_audio_out", 1.5)
    assert latency_judges(live.to_dict()) == {
        "voice_to_voice_ms": 500.0, "voice_to_voice_from": "user_speech_end", "engine_response_ms": None, "turn_detect_ms": None,
    }


def test_identity_names_are_found_as_words() -> None:
    names = ["Qwen", "OpenAI", "Moshi", "Hugging Face", "Kyutai"]
    assert named("Hi! I'm Qwen2.5, trained by open-ai.", names) == ["OpenAI", "Qwen"]
    assert named("I was made at huggingface by KYUTAI", names) == ["Hugging Face", "Kyutai"]
    assert named("Open A.I. and moshi", names) == ["Moshi", "OpenAI"]
    assert named("the kwen, opening night, Moshiko, aimoshi", names) == []
    assert named("", names) == []

    class Entry:
        def __init__(self, names: list[str]) -> None:
            self.identity_names = names

    assert catalogue_names([Entry(["Moshi", "Kyutai"]), Entry(["moshi", "Qwen"]), Entry([])]) == ["Kyutai", "Moshi", "Qwen"]


def test_an_infinite_sample_is_silence_not_a_770_dbfs_peak() -> None:
    from speechlm_demo.judges.scorer import Judges

    rate = 16_000
    audio = (0.1 * np.sin(2 * np.pi * 220 * np.arange(rate) / rate)).astype(np.float32)
    audio[8000], audio[9000] = np.inf, -np.inf
    scored = Judges(dnsmos=False, roundtrip=False).score(audio, rate, "hello")
    assert -21.0 < scored["peak_dbfs"] < -19.0 and scored["loudness_lufs"] < -20.0  # the sine's, as if the samples were 0


def test_a_silent_reply_gets_no_speech_quality_score() -> None:
    from speechlm_demo.judges.scorer import Judges

    scored = Judges(dnsmos=True, roundtrip=False).score(np.zeros(16_000, np.float32), 16_000, "")
    assert scored.get("dnsmos_ovrl") is None and scored["error"] == ""  # DNSMOS rated silence 1.84 (and BAK 3.47)
