"""Latency timeline figures: one row per stage, t = 0 at the user's true end of speech."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .timeline import STAGES  # noqa: E402

COLOURS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860")


def literal(text: str) -> str:
    """``text`` as matplotlib draws it literally (``$`` would start maths)."""
    return str(text).replace("$", r"\$")


def timeline_figure(records: Sequence[tuple[str, dict[str, Any]]], title: str = "") -> Figure:
    """Draw turn records (``Timeline.to_dict()``), each labelled, as aligned horizontal spans.

    Several records (e.g. engine A and B answering the same turn) share the time axis; every
    record's voice-to-voice latency is written on its reply bar.
    """
    rows: list[tuple[str, float, float, str, str]] = []  # (row label, start, end, colour, note)
    for index, (label, record) in enumerate(records):
        marks: dict[str, float] = record.get("marks_ms", {})
        colour = COLOURS[index % len(COLOURS)]
        prefix = f"{literal(label)}: " if len(records) > 1 else ""
        for stage, start, end in STAGES:
            if start in marks and end in marks and marks[end] >= marks[start]:
                note = ""
                if stage == "Reply audio":
                    metrics = record.get("metrics", {})
                    ref, own = metrics.get("voice_to_voice_ref_ms"), metrics.get("voice_to_voice_ms")
                    note = (
                        f"voice-to-voice {ref:.0f} ms\nfrom the reference end" if ref is not None
                        else f"voice-to-voice {own:.0f} ms\nfrom the turn layer's end" if own is not None else ""
                    )
                rows.append((prefix + stage, marks[start], marks[end], colour, note))
        if record.get("status") not in (None, "ok"):
            at = max(marks.values(), default=0.0)
            rows.append((prefix + record["status"], at, at, colour, literal(record.get("detail", "")[:60])))

    height = 1.2 + 0.38 * max(len(rows), 1)
    fig, ax = plt.subplots(figsize=(8.5, height), dpi=100)
    if not rows:
        ax.text(0.5, 0.5, "No turn yet: speak, then pause.", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        fig.tight_layout()
        return fig
    notes = []
    for y, (_name, start, end, colour, note) in enumerate(rows):
        ax.barh(y, max(end - start, 2.0), left=start, height=0.6, color=colour, alpha=0.85)
        if note:
            text = ax.text(end + 10, y, note, va="center", fontsize=8, fontweight="bold" if "voice" in note else None)
            text.set_in_layout(False)  # the layout keeps room for the labels; _fit_notes widens the axis for these
            notes.append(text)
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", linewidth=1, linestyle="--")
    ax.set_xlabel("ms relative to the end of your speech (t = 0)")
    lo = min(r[1] for r in rows)
    hi = max(r[2] for r in rows)
    ax.set_xlim(lo - 50, hi + max(250.0, 0.25 * (hi - lo)))
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    _fit_notes(fig, ax, notes)
    return fig


MAX_NOTE_SHARE = 0.6  # a note may take this share of the plot's width at most; a longer one is shortened


def _fit_notes(fig: Figure, ax: Any, notes: list[Any]) -> None:
    """Widen the time axis so every note written after its bar ends inside the plot (it used to run off the
    figure's edge); a note too long for that (a failure's reason) is shortened with "…" first."""
    if not notes:
        return
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    axes_px = ax.get_window_extent(renderer).width
    left, right = ax.get_xlim()
    for note in notes:
        text = note.get_text()
        while len(text) > 8 and (note.get_window_extent(renderer).width + 6) / axes_px > MAX_NOTE_SHARE:
            text = text[: int(len(text) * 0.85)].rstrip() + "…"
            note.set_text(text)
        share = (note.get_window_extent(renderer).width + 6) / axes_px  # of the axes' width, whatever the scale
        right = max(right, (note.get_position()[0] - share * left) / (1 - share))
    ax.set_xlim(left, right)


def pair_figure(records: Sequence[tuple[str, dict[str, Any]]], title: str = "Both replies, t = 0 at the end of your speech") -> Figure:
    """Two engines' timelines of the same turn (records without marks are left out), already closed."""
    figure = timeline_figure([(label, record) for label, record in records if record], title=title)
    close(figure)
    return figure


def close(fig: Figure) -> None:
    """Free a figure's memory once it has been rendered."""
    plt.close(fig)


def metrics_boxplot(values: dict[str, Sequence[float]], title: str = "") -> Figure:
    """Horizontal box plot, one row per metric (ms), with the p50 written beside each box."""
    present = {name: list(v) for name, v in values.items() if len(v)}
    fig, ax = plt.subplots(figsize=(8.5, 1.2 + 0.5 * max(len(present), 1)), dpi=100)
    if not present:
        ax.text(0.5, 0.5, "No successful turns.", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    names = list(present)
    ax.boxplot([present[n] for n in names], orientation="horizontal", tick_labels=names, showfliers=True)
    for y, name in enumerate(names, start=1):
        median = float(np.percentile(present[name], 50))  # the same p50 as the benchmark summary
        ax.text(max(present[name]), y, f"  p50 {median:.0f} ms", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("ms")
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig
