"""The turn record's document (stored with votes, drawn by Talk, Compare and the Blind reveal) says who answered."""

from __future__ import annotations

from speechlm_demo.measure.record import TurnRecord
from speechlm_demo.plots import close, timeline_figure
from speechlm_demo.timeline import Timeline


def fallback_record() -> TurnRecord:
    timeline = Timeline(turn_id=1, engine_id="mini-omni")
    for name, t in (("user_speech_end", 10.0), ("turn_detected", 10.2), ("first_audio_out", 10.6), ("last_audio_out", 11.6)):
        timeline.mark(name, t)
    timeline.extra["answered_by"] = "cascade"
    return TurnRecord("mini-omni", 1, timeline, reply_text="Paris.")


def test_a_fallback_turns_document_says_fallback_and_its_figure_shows_it() -> None:
    doc = fallback_record().to_dict()
    assert doc["status"] == "fallback" and doc["answered_by"] == "cascade"  # the timeline alone said "ok"
    figure = timeline_figure([("mini-omni", doc)])
    labels = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    close(figure)
    assert any("fallback" in label for label in labels), labels


def test_an_own_turns_document_is_unchanged() -> None:
    record = fallback_record()
    del record.timeline.extra["answered_by"]
    assert record.to_dict()["status"] == "ok" and record.to_dict()["answered_by"] == ""
