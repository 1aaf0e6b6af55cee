"""Compare measures both sides from one reference end of speech (README: ``reference_speech_end``, the same for
both engines): estimated once on the audio as recorded, not per side after resampling to each engine's rate, or
taken from the caller (a prompt's sidecar ``speech_end_s``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from speechlm_demo import compare as cmp
from speechlm_demo.measure.feeding import Feed, estimate_speech_end

RATE = 48_000


def stub(rate: int) -> Any:
    """An engine taking ``rate`` Hz; never run (``run_prompt`` is replaced)."""
    entry = SimpleNamespace(duplex="half", sample_rates=SimpleNamespace(input=rate, output=rate), label=f"e{rate}")
    return SimpleNamespace(id=f"e{rate}", entry=entry, settings=SimpleNamespace(audible_dbfs=-60.0))


def sibilant_turn() -> np.ndarray:
    """1 s of voice, a 150 ms /s/ at 10 kHz (lost by a 16 kHz resample, kept at 24 kHz), then 0.5 s of silence."""
    voiced = 0.3 * np.sin(2 * np.pi * 200 * np.arange(RATE) / RATE)
    hiss = 0.05 * np.sin(2 * np.pi * 10_000 * np.arange(int(0.15 * RATE)) / RATE)
    return np.concatenate([voiced, hiss, np.zeros(RATE // 2)]).astype(np.float32)


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> dict[str, float]:
    """``{engine id: the speech_end_s its prompt was fed with}``."""
    ends: dict[str, float] = {}

    def fake_run_prompt(engine: Any, prompt: Any, rate: int, tail: float, timeout: float, options: Any) -> Feed:
        ends[engine.id] = prompt.speech_end_s
        return Feed([], [], 0.0)

    monkeypatch.setattr(cmp, "run_prompt", fake_run_prompt)
    return ends


def test_answer_estimates_the_end_on_the_recorded_audio(seen: dict[str, float]) -> None:
    audio = sibilant_turn()
    cmp.answer(stub(16_000), audio, RATE)
    cmp.answer(stub(24_000), audio, RATE)
    expected = estimate_speech_end(audio, RATE)
    assert abs(expected - 1.15) < 0.021
    assert seen == {"e16000": pytest.approx(expected), "e24000": pytest.approx(expected)}


def test_compare_hands_both_sides_one_reference_end(seen: dict[str, float]) -> None:
    audio = sibilant_turn()
    result = cmp.compare(lambda: stub(16_000), lambda: stub(24_000), audio, RATE, tail_s=0.1, timeout_s=1.0)
    assert [side.engine_id for side in (result.a, result.b)] == ["e16000", "e24000"]
    assert seen["e16000"] == seen["e24000"] == pytest.approx(estimate_speech_end(audio, RATE))


def test_a_given_end_is_used_by_both_sides(seen: dict[str, float]) -> None:
    audio = sibilant_turn()
    cmp.compare(lambda: stub(16_000), lambda: stub(24_000), audio, RATE, speech_end_s=1.0, tail_s=0.1, timeout_s=1.0)
    assert seen == {"e16000": 1.0, "e24000": 1.0}
    cmp.answer(stub(16_000), audio, RATE, speech_end_s=1.0)
    assert seen["e16000"] == 1.0


def test_a_given_end_is_kept_within_the_clip(seen: dict[str, float]) -> None:
    audio = sibilant_turn()
    cmp.answer(stub(16_000), audio, RATE, speech_end_s=99.0)
    cmp.answer(stub(24_000), audio, RATE, speech_end_s=-1.0)
    assert seen == {"e16000": pytest.approx(len(audio) / RATE), "e24000": 0.0}


def test_an_end_that_is_not_a_number_fails_the_side(seen: dict[str, float]) -> None:
    result = cmp.answer(stub(16_000), sibilant_turn(), RATE, speech_end_s=float("nan"))
    assert result.status == "failed" and "speech_end_s" in result.message
    assert not seen
