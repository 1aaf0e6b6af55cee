"""Leaderboard figures: judge scores per engine (box plots) and rating vs latency (with the 95 % intervals)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from ..plots import close, literal

BOX_JUDGES = {
    "dnsmos_ovrl": "DNSMOS OVRL (1-5)",
    "roundtrip_wer": "round-trip WER",
    "words_per_minute": "speaking rate (wpm)",
    "duration_s": "reply duration (s)",
    "leading_silence_ms": "leading silence (ms)",
    "loudness_lufs": "loudness (LUFS)",
}


def judge_boxplots(judged: pd.DataFrame) -> Figure:
    """One panel per judge, one box per engine, from the judged replies (``engine`` + judge columns)."""
    panels = [j for j in BOX_JUDGES if j in judged and judged[j].notna().any()]
    if not panels:
        fig, ax = plt.subplots(figsize=(6, 1.5), dpi=100)
        ax.text(0.5, 0.5, "No judged replies yet.", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    engines = sorted(judged["engine"].unique())
    cols = min(3, len(panels))
    rows = math.ceil(len(panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 0.9 + (0.35 * len(engines) + 1.0) * rows), dpi=100, squeeze=False)
    for ax, judge in zip(axes.flat, panels, strict=False):
        data = [judged.loc[judged["engine"] == e, judge].dropna().to_numpy() for e in engines]
        shown = [(e, d) for e, d in zip(engines, data, strict=True) if len(d)]
        ax.boxplot([d for _, d in shown], orientation="horizontal", tick_labels=[literal(e) for e, _ in shown])
        ax.set_title(BOX_JUDGES[judge], fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.set_axis_off()
    fig.tight_layout()
    return fig


def rating_vs_latency(table: pd.DataFrame, latency: pd.DataFrame) -> Figure:
    """Each engine's rating (raw, and style-controlled when present) with its 95 % interval against its
    median voice-to-voice latency."""
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=100)
    merged = table.merge(latency.reset_index().rename(columns={"index": "engine"}), on="engine", how="inner") if not table.empty else table
    merged = merged[merged["p50_ms"].notna()] if "p50_ms" in merged else merged.iloc[0:0]
    if merged.empty:
        ax.text(0.5, 0.5, "No rated engine with a measured latency yet.", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
        return fig
    series = [("rating", "ci_low", "ci_high", "raw", "o", 0.0)]
    if "style_rating" in merged and merged["style_rating"].notna().any():
        series.append(("style_rating", "style_ci_low", "style_ci_high", "style-controlled", "s", 0.012))
    span = float(merged["p50_ms"].max() - merged["p50_ms"].min()) or float(merged["p50_ms"].max()) or 1.0
    for value, low, high, label, marker, shift in series:
        x = merged["p50_ms"] + shift * span
        error = [merged[value] - merged[low], merged[high] - merged[value]]
        ax.errorbar(x, merged[value], yerr=error, fmt=marker, capsize=3, label=label)
    for _, row in merged.iterrows():
        ax.annotate(literal(row["engine"]), (row["p50_ms"], row["rating"]), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.set_xlabel("voice-to-voice latency, median of voted replies (ms)")
    ax.set_ylabel("rating (Elo scale, 95 % interval)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def write_pngs(table: pd.DataFrame, latency: pd.DataFrame, judged: pd.DataFrame, folder: Path) -> list[Path]:
    """``judges_by_engine.png`` and ``rating_vs_latency.png`` in ``folder`` (created); returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, fig in (("judges_by_engine.png", judge_boxplots(judged)), ("rating_vs_latency.png", rating_vs_latency(table, latency))):
        path = folder / name
        fig.savefig(path)
        close(fig)
        written.append(path)
    return written
