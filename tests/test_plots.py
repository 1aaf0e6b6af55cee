"""The latency figure draws every stage present and writes voice-to-voice on the reply bar."""

from __future__ import annotations

from speechlm_demo.plots import close, metrics_boxplot, timeline_figure
from speechlm_demo.timeline import Timeline


def test_figure_rows_and_annotation() -> None:
    tl = Timeline(engine_id="echo")
    for name, t in [("user_speech_start", 0.0), ("user_speech_end", 1.0), ("reply_started", 1.16), ("turn_detected", 1.4), ("first_audio_out", 1.45), ("last_audio_out", 3.0)]:
        tl.mark(name, t)
    fig = timeline_figure([("echo", tl.to_dict())])
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["User speech", "Turn detection", "Reply pipeline", "Reply audio"]
    assert any("voice-to-voice 450 ms" in t.get_text() for t in ax.texts)
    close(fig)


def test_two_engines_share_the_axis_and_failures_show() -> None:
    ok = Timeline(engine_id="a")
    ok.mark("user_speech_end", 0.0)
    ok.mark("first_audio_out", 0.3)
    bad = Timeline(engine_id="b", status="failed", detail="server down")
    bad.mark("user_speech_end", 0.0)
    fig = timeline_figure([("A", ok.to_dict()), ("B", bad.to_dict())])
    labels = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert "B: failed" in labels
    close(fig)


def test_empty_figure_says_what_to_do() -> None:
    fig = timeline_figure([])
    assert "speak" in fig.axes[0].texts[0].get_text()
    close(fig)


def test_error_text_with_dollars_is_drawn_literally() -> None:
    record = {"marks_ms": {"user_speech_start": -900.0, "user_speech_end": 0.0}, "status": "failed", "detail": "bad $\\frac{$ input"}
    fig = timeline_figure([("$x$ engine", record), ("b", record)])
    fig.canvas.draw()  # raised ValueError before the text was escaped
    close(fig)


def test_box_plot_labels_the_same_p50_as_the_benchmark_summary() -> None:
    fig = metrics_boxplot({"voice_to_voice_ms": [100.0, 200.0, 300.0, 400.0], "asr_ms": [], "turn_detect_ms": [50.0]})
    labels = sorted(t.get_text().strip() for t in fig.axes[0].texts)
    close(fig)
    assert labels == ["p50 250 ms", "p50 50 ms"]


def test_the_latency_note_ends_inside_the_figure() -> None:
    """The Talk tab's figure: the reply bar reaches the right end of the data, its note comes after it."""
    tl = Timeline(engine_id="cascade")
    for name, t in [("user_speech_start", -1.65), ("user_speech_end", 0.0), ("reply_started", 0.0), ("asr_start", 0.005),
                    ("asr_final", 0.4), ("turn_detected", 0.4), ("first_audio_out", 0.897), ("last_audio_out", 2.94)]:
        tl.mark(name, t)
    for records in ([("cascade", tl.to_dict())], [("A", tl.to_dict()), ("B", tl.to_dict())]):
        fig = timeline_figure(records)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        notes = [t for t in fig.axes[0].texts if t.get_text() == "voice-to-voice 897 ms\nfrom the turn layer's end"]
        assert len(notes) == len(records)
        plot = fig.axes[0].get_window_extent(renderer)
        assert all(plot.x0 <= n.get_window_extent(renderer).x0 and n.get_window_extent(renderer).x1 <= plot.x1 for n in notes)
        close(fig)


def test_a_long_failure_reason_stays_inside_the_plot() -> None:
    record = {"marks_ms": {"user_speech_start": -900.0, "user_speech_end": 0.0}, "status": "failed",
              "detail": "the vLLM server at http://gpu-box:8000 accepts connections but does not answer: is it busy or hung?"}
    for records in ([("engine", record)], [("a long engine label · qwen2.5-omni-vllm", record), ("b", record)]):
        fig = timeline_figure(records)
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        ax = fig.axes[0]
        plot = ax.get_window_extent(renderer)
        notes = [t for t in ax.texts if t.get_text()]
        assert notes and all(record["detail"].startswith(t.get_text().rstrip("…")) for t in notes)
        assert all(plot.x0 <= t.get_window_extent(renderer).x0 and t.get_window_extent(renderer).x1 <= plot.x1 for t in notes)
        assert plot.x1 > 0.9 * fig.bbox.width  # the layout left no blank band for the note
        close(fig)
