"""Leaderboard tab: Bradley-Terry ratings with bootstrap intervals, win rates and latencies from the votes."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import gradio as gr
import matplotlib.pyplot as plt
import pandas as pd

from ..plots import close
from ..votes.ratings import COLUMNS, Leaderboard, leaderboard
from ..votes.store import StoreError, VoteStore
from .text import plain

log = logging.getLogger(__name__)

BOOTSTRAP_ROUNDS = 1000
MIN_VOTES = 30
CACHED_BOARDS = 16


class _BoardCache:
    """The last few leaderboards by their exact votes: a page load recomputes only when votes changed
    (1 000 bootstrap rounds over many votes take a noticeable fraction of a second)."""

    def __init__(self, size: int = CACHED_BOARDS) -> None:
        self._boards: OrderedDict[tuple[str, int, int], Leaderboard] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, tag: str, frame: pd.DataFrame) -> Leaderboard:
        key = (tag, len(frame), int(pd.util.hash_pandas_object(frame, index=False).sum()))
        with self._lock:
            if key in self._boards:
                self._boards.move_to_end(key)
                return self._boards[key]
        board = leaderboard(frame, rounds=BOOTSTRAP_ROUNDS, min_votes=MIN_VOTES)
        with self._lock:
            self._boards[key] = board
            while len(self._boards) > self._size:
                self._boards.popitem(last=False)
        return board


_boards = _BoardCache()


def win_rate_heatmap(win_rates: pd.DataFrame) -> Any:
    """Row-beats-column win rates as a heatmap (None without votes)."""
    if win_rates.empty:
        return None
    fig, ax = plt.subplots(figsize=(1.6 + 0.9 * len(win_rates), 1.2 + 0.7 * len(win_rates)), dpi=100)
    image = ax.imshow(win_rates.to_numpy(dtype=float), vmin=0, vmax=1, cmap="RdYlGn")
    ax.set_xticks(range(len(win_rates.columns)), win_rates.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(len(win_rates.index)), win_rates.index, fontsize=8)
    for (row, col), value in pd.DataFrame(win_rates.to_numpy(dtype=float)).stack().items():
        ax.text(col, row, f"{value:.2f}", ha="center", va="center", fontsize=8)
    fig.colorbar(image, ax=ax, label="win rate of row vs column")
    fig.tight_layout()
    return fig


def leaderboard_views(store: VoteStore, tag: str = "") -> tuple[pd.DataFrame, Any, pd.DataFrame, str]:
    """Ratings table, heatmap, latency table and a summary line (optionally one listening session only)."""
    try:
        frame = store.frame(COLUMNS, tag=tag.strip() or None)
    except StoreError:
        log.exception("leaderboard: the vote store cannot be read")
        return pd.DataFrame(), None, pd.DataFrame(), "⚠️ The vote store is unavailable right now; please try again later."
    board = _boards.get(tag.strip(), frame)
    if board.table.empty:
        return board.table, None, pd.DataFrame(columns=["engine"]), "No votes yet" + (f" for session {plain(tag.strip())}." if tag.strip() else ".")
    summary = (
        f"{board.votes} votes; 95 % intervals from {board.rounds} bootstrap rounds; sorted by the interval's lower "
        f"bound; engines with fewer than {board.min_votes} votes are marked preliminary."
    )
    return board.table, win_rate_heatmap(board.win_rates), board.latency.reset_index(), summary


def build_leaderboard_tab(demo: gr.Blocks, store: VoteStore | None) -> None:
    """Render the tab (call inside a ``gr.Tab`` of ``demo``); it fills itself when the page loads."""
    if store is None:
        gr.Markdown("⚠️ The vote store could not be opened; see the server log. Talking works without it.")
        return
    with gr.Row():
        tag = gr.Textbox(label="Listening session (empty: all votes)", scale=3)
        refresh = gr.Button("Refresh", scale=1)
    summary = gr.Markdown()
    table = gr.Dataframe(label="Ratings (Bradley-Terry, Elo scale)", interactive=False, elem_id="leaderboard-table")
    with gr.Row():
        heatmap = gr.Plot(label="Win rates")
        latency = gr.Dataframe(label="Voice-to-voice latency of voted replies (ms, from the reference end of speech of the recorded turn)", interactive=False)

    def update(tag_value: str) -> tuple:
        ratings, figure, latencies, text = leaderboard_views(store, tag_value)
        if figure is not None:
            close(figure)
        return ratings, figure, latencies, text

    refresh.click(update, inputs=[tag], outputs=[table, heatmap, latency, summary])
    tag.submit(update, inputs=[tag], outputs=[table, heatmap, latency, summary])
    demo.load(update, inputs=[tag], outputs=[table, heatmap, latency, summary])
