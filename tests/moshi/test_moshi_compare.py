"""A full-duplex engine (tiny random Moshi) on one side of a comparison, an echo on the other."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.compare import compare
from speechlm_demo.engines.echo import EchoEngine
from tests.engines_for_tests import entry, silence, tone

pytestmark = pytest.mark.slow


def test_moshi_and_echo_answer_the_same_turn(local_engine) -> None:
    echo = EchoEngine(entry("echo").model_copy(update={"engine_class": "speechlm_demo.engines.echo:EchoEngine"}))
    turn = np.concatenate([tone(0.8), silence(0.1)])
    result = compare(local_engine, echo, turn, 16_000, tail_s=1.0, window_s=2.0, timeout_s=20.0)
    moshi, other = result.a, result.b
    assert moshi.status == "ok", moshi.message  # the tiny model babbles: there is agent audio after the turn
    assert moshi.sample_rate == 24_000 and len(moshi.audio) > 0 and rms_dbfs(moshi.audio) > -60
    assert len(moshi.audio) / moshi.sample_rate <= 2.0 + 0.5  # only (about) the bounded window after the turn
    assert moshi.timeline["marks_ms"]["reference_speech_end"] == 0.0 and moshi.latency_ms is not None
    assert moshi.timeline["measured_from"]["voice_to_voice_ref_ms"] == "reference_speech_end"
    assert other.ok and other.latency_ms is not None
