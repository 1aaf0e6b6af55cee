"""Leaderboard tab: raw and style-controlled Bradley-Terry ratings with bootstrap intervals, judge means, the
judges' rank agreement with the votes, win rates, latencies and the judge / rating-vs-latency plots."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Any

import gradio as gr
import matplotlib.pyplot as plt
import pandas as pd

from ..judges.plots import judge_boxplots, rating_vs_latency
from ..judges.records import read_judgements
from ..plots import close
from ..timeline import LATENCY_FROM, ORIGIN_LABELS
from ..votes.board import Board, build_board, vote_columns
from ..votes.store import StoreError, VoteStore
from .text import plain

log = logging.getLogger(__name__)

BOOTSTRAP_ROUNDS = 1000
STYLE_ROUNDS = 200
MIN_VOTES = 30
CACHED_BOARDS = 16
TABLE_COLUMNS = ["rank", "engine", "rating", "ci_low", "ci_high", "style_rating", "style_ci_low", "style_ci_high", "votes", "wins", "ties", "losses", "preliminary"]


class _BoardCache:
    """The last few boards by their votes and judgements: a page load recomputes only when they changed
    (1 000 bootstrap rounds over many votes take a noticeable fraction of a second). Vote rows never change,
    so their ids say which votes a board counts: a load that hits the cache reads only the ids."""

    def __init__(self, size: int = CACHED_BOARDS) -> None:
        self._boards: OrderedDict[tuple[str, bool, tuple[int, int], int], Board] = OrderedDict()
        self._lock = threading.Lock()
        self._size = size

    def get(self, store: VoteStore, tag: str, exclude_outliers: bool) -> Board:
        """The board of ``store``'s votes (of listening session ``tag``; all when empty). Raises StoreError."""
        judgements = read_judgements(store)
        judged = _digest(judgements)
        key = (tag, exclude_outliers, ids_digest(store.frame(["vote_id"], tag=tag or None)["vote_id"]), judged)
        with self._lock:
            if key in self._boards:
                self._boards.move_to_end(key)
                return self._boards[key]
        votes = store.frame(vote_columns(), tag=tag or None)
        board = build_board(votes, judgements, rounds=BOOTSTRAP_ROUNDS, style_rounds=STYLE_ROUNDS, min_votes=MIN_VOTES, exclude_outliers=exclude_outliers)
        with self._lock:  # under the key of the votes it counts (more may have come in since the ids were read)
            self._boards[(tag, exclude_outliers, ids_digest(votes["vote_id"]), judged)] = board
            while len(self._boards) > self._size:
                self._boards.popitem(last=False)
        return board


def ids_digest(vote_ids: pd.Series) -> tuple[int, int]:
    """How many votes and an order-free hash of their ids: changes when a vote is added or removed."""
    return len(vote_ids), int(pd.util.hash_pandas_object(vote_ids.astype(str), index=False).sum()) if len(vote_ids) else 0


def _digest(frame: pd.DataFrame) -> int:
    """The judgements change in place (scores arrive, leak verdicts grow): their whole content is hashed."""
    return int(pd.util.hash_pandas_object(frame.astype(str), index=False).sum()) if not frame.empty else 0


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


def judge_table(board: Board) -> pd.DataFrame:
    """Per engine the judge means, then one row per judge's Kendall tau with the human ranking."""
    if board.judge_means.empty:
        return pd.DataFrame(columns=["engine"])
    means = board.judge_means.round(3).reset_index()
    taus = {name: value["tau"] for name, value in board.judge_tau.items()}
    tau_row = {"engine": "Kendall tau vs votes", **{name: taus.get(name) for name in means.columns if name != "engine"}}
    return pd.DataFrame([*means.to_dict(orient="records"), tau_row], columns=means.columns)


def summary_text(board: Board, tag: str) -> str:
    """One paragraph: votes, intervals, sorting, what was not counted and why."""
    if board.raw.table.empty:
        text = "No votes yet" + (f" for session {plain(tag)}." if tag else ".")
    else:
        text = (
            f"{board.raw.votes} votes counted; 95 % intervals from {board.raw.rounds} bootstrap rounds; sorted by the "
            f"interval's lower bound; engines with fewer than {board.raw.min_votes} votes are marked preliminary. "
            "The style-controlled rating is the strength at equal reply duration and voice-to-voice latency."
        )
    leaks, outliers = board.excluded.get("identity_leaks", 0), board.excluded.get("outlier_votes", 0)
    if leaks:
        text += f" {leaks} vote(s) not counted: a reply named an engine, model or company (identity leak)."
    if board.outliers:
        action = f"their {outliers} vote(s) left out" if outliers else "their votes still counted"
        text += f" {len(board.outliers)} voter(s) flagged as outliers (votes far from each pair's consensus), {action}."
    return text


def leaderboard_views(store: VoteStore, tag: str | None = "", exclude_outliers: bool | None = False) -> tuple[pd.DataFrame, Any, pd.DataFrame, pd.DataFrame, Any, Any, str]:
    """Ratings table, heatmap, latency table, judge table, judge box plots, rating-vs-latency plot and a summary
    (an API client may send nulls: no tag, outliers kept)."""
    tag = tag.strip() if isinstance(tag, str) else ""
    exclude_outliers = exclude_outliers is True
    try:
        board = _boards.get(store, tag, exclude_outliers)
    except StoreError:
        log.exception("leaderboard: the vote store cannot be read")
        empty = pd.DataFrame()
        return empty, None, empty, empty, None, None, "⚠️ The vote store is unavailable right now; please try again later."
    if board.raw.table.empty:
        return board.raw.table, None, pd.DataFrame(columns=["engine"]), pd.DataFrame(columns=["engine"]), None, None, summary_text(board, tag)
    table = board.table()
    latency = board.raw.latency
    return (
        table[[c for c in TABLE_COLUMNS if c in table]],
        win_rate_heatmap(board.raw.win_rates),
        latency.reset_index(),
        judge_table(board),
        judge_boxplots(board.judged) if not board.judged.empty else None,
        rating_vs_latency(table, latency),
        summary_text(board, tag),
    )


def build_leaderboard_tab(demo: gr.Blocks, store: VoteStore | None) -> None:
    """Render the tab (call inside a ``gr.Tab`` of ``demo``); it fills itself when the page loads."""
    if store is None:
        gr.Markdown("⚠️ The vote store could not be opened; see the server log. Talking works without it.")
        return
    with gr.Row():
        tag = gr.Textbox(label="Listening session (empty: all votes)", scale=3)
        exclude = gr.Checkbox(label="Leave out flagged outlier voters", value=False, scale=1)
        refresh = gr.Button("Refresh", scale=1)
    summary = gr.Markdown()
    table = gr.Dataframe(label="Ratings (Bradley-Terry, Elo scale): raw and style-controlled", interactive=False, elem_id="leaderboard-table")
    with gr.Row():
        scatter = gr.Plot(label="Rating vs latency")
        heatmap = gr.Plot(label="Win rates")
    judges = gr.Dataframe(label="Automatic judges: mean per engine, and each judge's rank agreement with the votes", interactive=False)
    boxes = gr.Plot(label="Judge scores per engine")
    latency = gr.Dataframe(label=f"Voice-to-voice latency of voted replies (ms, from {ORIGIN_LABELS[LATENCY_FROM]} of the recorded turn)", interactive=False)
    outputs = [table, heatmap, latency, judges, boxes, scatter, summary]

    def update(tag_value: str, exclude_value: bool) -> tuple:
        views = leaderboard_views(store, tag_value, bool(exclude_value))
        for figure in (views[1], views[4], views[5]):
            if figure is not None:
                close(figure)
        return views

    refresh.click(update, inputs=[tag, exclude], outputs=outputs)
    tag.submit(update, inputs=[tag, exclude], outputs=outputs)
    exclude.change(update, inputs=[tag, exclude], outputs=outputs)
    demo.load(update, inputs=[tag, exclude], outputs=outputs)
