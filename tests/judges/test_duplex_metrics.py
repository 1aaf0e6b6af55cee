"""Full-duplex metrics: exact on segment lists and on a scripted duplex engine fed through the benchmark."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.benchmarks import latency as bench
from speechlm_demo.hardware import simulated_host
from speechlm_demo.judges.duplex import Segment, duplex_metrics, output_track, speech_segments, summarise_duplex
from speechlm_demo.measure.feeding import load_prompts
from tests.engines_for_tests import silence, tone
from tests.judges.duplex_engine import ScriptedDuplexEngine, duplex_entry


def test_segments_from_a_played_track() -> None:
    chunks = [(0.0, silence(0.5)), (0.5, tone(0.3)), (0.8, silence(0.1)), (0.9, tone(0.5)), (2.0, tone(0.2))]
    signal, origin = output_track(chunks, 16_000)
    assert origin == 0.0 and len(signal) == int(2.2 * 16_000)
    assert speech_segments(signal, 16_000) == [Segment(0.5, 1.4), Segment(2.0, 2.2)]  # the 0.1 s gap is bridged
    late = output_track([(0.0, tone(0.5)), (0.1, tone(0.5))], 16_000)[0]  # a chunk never overlaps the one before
    assert len(late) == 16_000


def test_metrics_on_known_segments() -> None:
    smooth = duplex_metrics([Segment(1.0, 1.4), Segment(1.9, 3.9)], {"speech_start_s": 0.0, "speech_end_s": 1.5})
    assert smooth == {"turn_takeover": 1.0, "response_latency_ms": 400.0, "backchannels": 1.0, "backchannel_per_min": 40.0}
    paused = {"speech_start_s": 0.0, "pause_start_s": 0.6, "pause_end_s": 1.5, "speech_end_s": 2.1}
    assert duplex_metrics([Segment(1.1, 3.1)], paused)["pause_takeover"] == 1.0
    assert duplex_metrics([Segment(0.9, 1.2), Segment(2.5, 4.0)], paused)["pause_takeover"] == 0.0  # a short "mm" is no takeover
    cut_in = {"speech_start_s": 0.0, "question_end_s": 1.0, "interrupt_start_s": 2.2, "interrupt_end_s": 2.8, "speech_end_s": 2.8}
    answered = duplex_metrics([Segment(1.5, 2.3), Segment(3.3, 5.3)], cut_in)
    assert answered["stop_latency_ms"] == pytest.approx(100.0) and answered["interrupt_takeover"] == 1.0
    assert answered["interrupt_response_ms"] == pytest.approx(500.0) and "turn_takeover" not in answered
    ignored = duplex_metrics([Segment(1.5, 4.0)], cut_in)  # talks over the user and never answers
    assert ignored["stop_latency_ms"] == pytest.approx(1800.0) and ignored["interrupt_takeover"] == 0.0
    assert duplex_metrics([], {"speech_end_s": 1.0})["turn_takeover"] == 0.0
    summary = summarise_duplex([smooth, {"turn_takeover": 0.0, "response_latency_ms": None}])
    assert summary["turn_takeover"] == {"mean": 0.5, "n": 2} and summary["response_latency_ms"] == {"mean": 400.0, "n": 1, "p50": 400.0}


def write(folder: Path, name: str, audio: np.ndarray, **cues: float) -> None:
    sf.write(folder / f"{name}.wav", audio, 16_000, subtype="PCM_16")
    (folder / f"{name}.json").write_text(json.dumps(cues))


@pytest.mark.slow
def test_the_benchmark_measures_a_scripted_duplex_engine_exactly(tmp_path: Path) -> None:
    # every boundary is on the 20 ms frame grid, so the engine's behaviour is known to the frame
    write(tmp_path, "a_smooth", np.concatenate([tone(1.2), silence(3.0)]), speech_end_s=1.2)
    write(tmp_path, "b_paused", np.concatenate([tone(0.6), silence(0.9), tone(0.6), silence(3.0)]), speech_end_s=2.1, pause_start_s=0.6, pause_end_s=1.5)
    write(tmp_path, "c_interrupt", np.concatenate([tone(1.0), silence(1.2), tone(0.6), silence(3.0)]),
          speech_end_s=2.8, question_end_s=1.0, interrupt_start_s=2.2, interrupt_end_s=2.8)
    engine = ScriptedDuplexEngine(duplex_entry(respond_after_s=0.5, reply_s=2.0, yield_after_s=0.1, backchannel_after_s=1.0))
    prompts = load_prompts(tmp_path, 16_000)
    turns = bench.benchmark(engine, prompts, tail_s=0.0, timeout_s=0.1)
    smooth, paused, interrupt = (t.duplex for t in turns)
    # 0.5 s of silence = 25 frames; the reply starts in the 25th silent frame, 480 ms after the end of speech
    assert smooth == {"turn_takeover": 1.0, "response_latency_ms": 480.0, "backchannels": 1.0, "backchannel_per_min": 50.0}
    assert paused["pause_takeover"] == 1.0 and paused["backchannels"] == 0.0  # answers inside the 0.9 s pause
    # speaking from 1.48 s, hears the interruption at 2.2 s, stops after 5 voiced frames; answers 480 ms after it
    assert interrupt["stop_latency_ms"] == pytest.approx(80.0) and interrupt["interrupt_takeover"] == 1.0
    assert interrupt["interrupt_response_ms"] == pytest.approx(480.0)
    patient = ScriptedDuplexEngine(duplex_entry(respond_after_s=1.2, reply_s=2.0, yield_after_s=0.1, backchannel_after_s=9.0))
    waited = bench.benchmark(patient, prompts[1:2], tail_s=0.0, timeout_s=0.1)[0].duplex
    assert waited["pause_takeover"] == 0.0 and waited["backchannels"] == 0.0
    doc = bench.report("scripted-duplex", simulated_host("cpu"), turns)
    assert doc["summary"]["duplex"]["pause_takeover"] == {"mean": 1.0, "n": 1}
    assert "duplex stop_latency_ms" in bench.format_summary(doc)
