"""Timeline arithmetic: marks, spans, metrics, origin at the true end of speech."""

from __future__ import annotations

import pytest

from speechlm_demo.timeline import STANDARD_MARKS, Timeline


def cascade_turn() -> Timeline:
    tl = Timeline(turn_id=3, engine_id="cascade")
    times = [10.0, 11.98, 12.0, 12.16, 12.25, 12.25, 12.65, 12.70, 12.85, 12.95, 15.0]
    assert len(times) == len(STANDARD_MARKS)
    for name, t in zip(STANDARD_MARKS, times):
        tl.mark(name, t)
    return tl


def test_metrics_are_differences_in_ms() -> None:
    m = cascade_turn().metrics()
    assert m["voice_to_voice_ms"] == pytest.approx(950.0)
    assert m["turn_detect_ms"] == pytest.approx(250.0)
    assert m["asr_ms"] == pytest.approx(400.0)
    assert m["llm_ttft_ms"] == pytest.approx(50.0)
    assert m["tts_first_audio_ms"] == pytest.approx(100.0)
    assert m["user_speech_ms"] == pytest.approx(2000.0)
    assert m["voice_to_voice_ref_ms"] == pytest.approx(970.0) and m["speech_end_error_ms"] == pytest.approx(20.0)


def test_every_metric_names_the_mark_it_is_measured_from() -> None:
    tl = cascade_turn()
    origins = tl.to_dict()["measured_from"]
    assert origins["voice_to_voice_ms"] == "user_speech_end"
    assert origins["voice_to_voice_ref_ms"] == "reference_speech_end"
    assert set(origins) == set(tl.metrics())


def test_relative_marks_are_ordered_and_zero_at_speech_end() -> None:
    rel = cascade_turn().relative_ms()
    assert set(rel) == set(STANDARD_MARKS) and list(rel)[0] == "user_speech_start"
    assert rel["reference_speech_end"] == 0.0  # the reference wins as the origin when present
    assert rel["user_speech_end"] == 20.0 and rel["user_speech_start"] == -1980.0


def test_first_mark_wins_except_last_marks() -> None:
    tl = Timeline()
    tl.mark("first_audio_out", 1.0)
    tl.mark("first_audio_out", 2.0)
    tl.mark("last_audio_out", 3.0)
    tl.mark("last_audio_out", 4.0)
    assert tl.marks == {"first_audio_out": 1.0, "last_audio_out": 4.0}


def test_spans_skip_missing_marks() -> None:
    tl = Timeline()
    tl.mark("user_speech_start", 1.0)
    tl.mark("user_speech_end", 2.0)
    tl.mark("reply_started", 2.2)
    tl.mark("turn_detected", 2.4)
    tl.mark("first_audio_out", 2.5)
    labels = [s.label for s in tl.spans()]
    assert labels == ["User speech", "Turn detection", "Reply pipeline"]
    assert tl.spans()[2].duration_ms == pytest.approx(300.0)
    assert tl.metrics()["engine_response_ms"] == pytest.approx(300.0)  # asked at reply_started
    assert tl.voice_to_voice_ms == pytest.approx(500.0)
    assert "asr_ms" not in tl.metrics()


def test_engine_response_of_a_full_duplex_turn_counts_from_the_commit() -> None:
    tl = Timeline()
    tl.mark("user_speech_end", 2.0)
    tl.mark("turn_detected", 2.4)
    tl.mark("first_audio_out", 2.5)
    assert tl.metrics()["engine_response_ms"] == pytest.approx(100.0)


def test_empty_and_default_clock() -> None:
    tl = Timeline()
    assert tl.relative_ms() == {} and tl.spans() == [] and tl.origin is None
    t = tl.mark("turn_detected")
    assert tl.marks["turn_detected"] == t and tl.origin == t


def test_to_dict_is_json_ready() -> None:
    import json

    record = cascade_turn().to_dict()
    assert json.loads(json.dumps(record))["metrics"]["voice_to_voice_ms"] == pytest.approx(950.0)
