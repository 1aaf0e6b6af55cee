"""Duplex metrics on the tiny random Moshi through the benchmark: every figure is present and in range."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.benchmarks.latency import benchmark, summarise
from speechlm_demo.measure.feeding import load_prompts
from tests.engines_for_tests import silence, tone

pytestmark = pytest.mark.slow


def test_tiny_moshi_gets_duplex_figures_in_range(local_engine: Any, tmp_path: Path) -> None:
    audio = np.concatenate([tone(0.6), silence(0.8), tone(0.6), silence(1.0)])
    sf.write(tmp_path / "paused.wav", audio, 16_000, subtype="PCM_16")
    (tmp_path / "paused.json").write_text(json.dumps({"speech_end_s": 2.0, "pause_start_s": 0.6, "pause_end_s": 1.4}))
    cut_in = np.concatenate([tone(0.6), silence(1.0), tone(0.5), silence(1.0)])
    sf.write(tmp_path / "z_interrupt.wav", cut_in, 16_000, subtype="PCM_16")
    (tmp_path / "z_interrupt.json").write_text(json.dumps({"speech_end_s": 2.1, "question_end_s": 0.6, "interrupt_start_s": 1.6, "interrupt_end_s": 2.1}))
    turns = benchmark(local_engine, load_prompts(tmp_path, 16_000), tail_s=1.0, timeout_s=5.0)
    paused, interrupt = (t.duplex for t in turns)
    assert paused["pause_takeover"] in (0.0, 1.0) and interrupt["interrupt_takeover"] in (0.0, 1.0)
    assert 0.0 <= paused["backchannel_per_min"] < 600 and paused["backchannels"] >= 0
    for value in (interrupt["stop_latency_ms"], interrupt["interrupt_response_ms"]):
        assert value is None or 0.0 <= value < 5000
    summary = summarise(turns)["duplex"]
    assert summary["pause_takeover"]["n"] == 1 and summary["interrupt_takeover"]["n"] == 1
