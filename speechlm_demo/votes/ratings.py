"""Leaderboard from blind votes: Bradley-Terry ratings with bootstrap 95 % intervals, win rates, latencies.

Each vote is a game between its two engines: "a"/"b" is a win, "tie" and "both_bad" count half to each.
Every pair that was played also gets :data:`PSEUDO_VOTES` of each result (a win each way and a tie: the
Jeffreys prior on a pair's results), so a pair seen only one way (one vote, or an engine that never lost)
is pulled towards even by one and a half votes: one lucky vote is worth ~150 Elo points, not a thousand,
and a few dozen votes outweigh the pseudo-votes. The Bradley-Terry log-strengths are fitted by Newton's
method with a very weak Gaussian prior (:data:`PRIOR`), which only ties a disconnected comparison graph
together, and reported on the Elo scale: ``1000 + 400 * log10(strength / geometric mean strength)``.

The intervals come from a Bayesian bootstrap (Rubin, 1981) of the same model. Votes that agree in (pair,
result) are interchangeable, so a draw gives the cells (pseudo-votes included) shares of the votes from a
Dirichlet over them: the draws centre on the rating, and a pair seen one way gets an interval as wide as its
evidence instead of the zero-width one a plain resample gives. All rounds are drawn at once and fitted
together as one batch of Newton iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..timeline import COMPARED_LATENCY, LATENCY_FROM, ORIGIN_LABELS

SCALE = 400.0 / math.log(10.0)
BASE = 1000.0
PRIOR = 1e-3  # precision of the Gaussian prior on log-strengths
PSEUDO_VOTES = 0.5  # added to each result (either engine wins, tie) of every pair that was played
COLUMNS = ["engine_a", "engine_b", "outcome", "status_a", "status_b", "latency_a_ms", "latency_b_ms"]  # what it reads


def win_matrix(frame: pd.DataFrame, engines: list[str]) -> np.ndarray:
    """``W[i, j]``: wins of engine i over engine j (ties and both-bad count half)."""
    k = len(engines)
    return (_cell_counts(frame, engines) @ _cell_weights(k)).reshape(k, k)


def _cell_counts(frame: pd.DataFrame, engines: list[str]) -> np.ndarray:
    """Votes per cell; a cell is (ordered pair i < j, result: i wins | j wins | half each)."""
    k = len(engines)
    index = {name: n for n, name in enumerate(engines)}
    a = frame["engine_a"].map(index).to_numpy(dtype=np.int64)
    b = frame["engine_b"].map(index).to_numpy(dtype=np.int64)
    outcome = frame["outcome"].to_numpy()
    lo, hi = np.minimum(a, b), np.maximum(a, b)
    winner = np.where(outcome == "a", a, np.where(outcome == "b", b, -1))
    result = np.where(winner == -1, 2, np.where(winner == lo, 0, 1))
    cells = (lo * k + hi) * 3 + result
    return np.bincount(cells, minlength=k * k * 3).astype(np.float64)


def _cell_weights(k: int) -> np.ndarray:
    """Matrix mapping cell counts (k*k*3) to the flattened win matrix (k*k)."""
    weights = np.zeros((k * k * 3, k * k))
    for i in range(k):
        for j in range(i + 1, k):
            cell = (i * k + j) * 3
            weights[cell, i * k + j] = 1.0
            weights[cell + 1, j * k + i] = 1.0
            weights[cell + 2, i * k + j] = weights[cell + 2, j * k + i] = 0.5
    return weights


def fit(wins: np.ndarray, *, prior: float = PRIOR, tol: float = 1e-9, max_iter: int = 100) -> np.ndarray:
    """Bradley-Terry log-strengths (mean zero) for one win matrix ``(k, k)`` or a batch ``(..., k, k)``."""
    wins = np.asarray(wins, dtype=np.float64)
    k = wins.shape[-1]
    games = wins + np.swapaxes(wins, -1, -2)
    won = wins.sum(-1)
    theta = np.zeros(wins.shape[:-1])
    eye = np.eye(k)
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(theta[..., None, :] - theta[..., :, None]))  # P(i beats j)
        grad = won - (games * p).sum(-1) - prior * theta
        info = games * p * (1.0 - p)
        hessian = info - eye * (info.sum(-1)[..., None] + prior)  # negative definite
        step = np.linalg.solve(hessian, grad[..., None])[..., 0]
        size = np.abs(step).max(-1, keepdims=True)
        theta = theta - step * np.minimum(1.0, 2.0 / np.maximum(size, 1e-300))  # damped Newton
        if float(size.max()) < tol:
            break
    return theta - theta.mean(-1, keepdims=True)


def to_elo(theta: np.ndarray) -> np.ndarray:
    """Log-strengths to the Elo-like display scale."""
    return BASE + SCALE * theta


def smoothed_counts(counts: np.ndarray, pseudo_votes: float = PSEUDO_VOTES) -> np.ndarray:
    """Cell counts (see :func:`_cell_counts`) with ``pseudo_votes`` added to each result of every played pair."""
    cells = counts.reshape(-1, 3)
    return (cells + pseudo_votes * (cells.sum(1, keepdims=True) > 0)).ravel()


def bootstrap(
    frame: pd.DataFrame, engines: list[str], rounds: int, *, seed: int | None = 0, prior: float = PRIOR, pseudo_votes: float = PSEUDO_VOTES
) -> np.ndarray:
    """Elo ratings of ``rounds`` Bayesian-bootstrap draws of the votes, shape ``(rounds, k)``."""
    return _draws(smoothed_counts(_cell_counts(frame, engines), pseudo_votes), len(engines), rounds, seed, prior)


def _draws(alpha: np.ndarray, k: int, rounds: int, seed: int | None, prior: float) -> np.ndarray:
    """Elo ratings of ``rounds`` Dirichlet draws over the smoothed cell counts ``alpha`` of ``k`` engines."""
    active = alpha > 0
    rng = np.random.default_rng(seed)
    samples = np.zeros((rounds, alpha.size))
    samples[:, active] = alpha.sum() * rng.dirichlet(alpha[active], size=rounds)
    wins = (samples @ _cell_weights(k)).reshape(rounds, k, k)
    return to_elo(fit(wins, prior=prior))


def latency_stats(frame: pd.DataFrame) -> pd.DataFrame:
    """Per engine: replies, failures, and voice-to-voice p50 / p90 / mean (ms) of the answered ones."""
    sides = [
        frame[[f"engine_{s}", f"status_{s}", f"latency_{s}_ms"]].set_axis(["engine", "status", COMPARED_LATENCY], axis=1)
        for s in ("a", "b")
    ]
    replies = pd.concat(sides, ignore_index=True)
    # numeric even when every stored latency is NULL (an object column, which quantile() refuses)
    latency = pd.to_numeric(replies[COMPARED_LATENCY], errors="coerce").astype(np.float64)
    replies[COMPARED_LATENCY] = latency.where(replies["status"] == "ok")
    grouped = replies.groupby("engine")
    stats = pd.DataFrame(
        {
            "replies": grouped.size(),
            "failed": grouped["status"].agg(lambda s: int((s != "ok").sum())),
            "p50_ms": grouped[COMPARED_LATENCY].median(),
            "p90_ms": grouped[COMPARED_LATENCY].quantile(0.9),
            "mean_ms": grouped[COMPARED_LATENCY].mean(),
        }
    )
    return stats.round(1)


@dataclass
class Leaderboard:
    """Ratings table (best first), win-rate matrix and latency table."""

    table: pd.DataFrame
    win_rates: pd.DataFrame
    latency: pd.DataFrame
    votes: int
    rounds: int
    min_votes: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (missing values as null)."""

        def clean(frame: pd.DataFrame) -> Any:
            return frame.astype(object).where(frame.notna(), None)

        return {
            "votes": self.votes,
            "bootstrap_rounds": self.rounds,
            "min_votes": self.min_votes,
            "engines": clean(self.table).to_dict(orient="records"),
            "win_rates": clean(self.win_rates).to_dict(orient="index"),
            "latency": clean(self.latency.reset_index()).to_dict(orient="records"),
            "latency_measured_from": LATENCY_FROM,
        }

    def format(self) -> str:
        """Plain-text tables."""
        if self.table.empty:
            return "no votes yet"
        return "\n\n".join(
            [
                (
                    f"{self.votes} votes, 95 % intervals from {self.rounds} bootstrap rounds; "
                    f"'preliminary' = fewer than {self.min_votes} votes"
                ),
                self.table.to_string(index=False),
                "Win rate of row against column (ties count half):\n" + self.win_rates.to_string(float_format="{:.2f}".format),
                f"Voice-to-voice latency of the voted replies (ms, from {ORIGIN_LABELS[LATENCY_FROM]} of the recorded turn):\n" + self.latency.to_string(),
            ]
        )


def leaderboard(
    frame: pd.DataFrame, *, rounds: int = 1000, min_votes: int = 30, seed: int | None = 0, prior: float = PRIOR, pseudo_votes: float = PSEUDO_VOTES
) -> Leaderboard:
    """The leaderboard of a vote frame (the :data:`COLUMNS` of the store's votes)."""
    columns = ["rank", "engine", "rating", "ci_low", "ci_high", "votes", "wins", "ties", "losses", "preliminary"]
    if frame.empty:
        empty = pd.DataFrame(columns=columns)
        return Leaderboard(empty, pd.DataFrame(), pd.DataFrame(), 0, rounds, min_votes)
    engines = sorted(set(frame["engine_a"]) | set(frame["engine_b"]))
    wins = win_matrix(frame, engines)
    games = wins + wins.T
    k = len(engines)
    alpha = smoothed_counts(_cell_counts(frame, engines), pseudo_votes)  # counted once, for the fit and the draws
    rating = to_elo(fit((alpha @ _cell_weights(k)).reshape(k, k), prior=prior))
    draws = _draws(alpha, k, rounds, seed, prior)
    low, high = np.percentile(draws, [2.5, 97.5], axis=0)
    outcome = frame["outcome"]
    tie = outcome.isin(["tie", "both_bad"])
    votes = pd.concat([frame["engine_a"], frame["engine_b"]]).value_counts()
    won = pd.concat([frame.loc[outcome == "a", "engine_a"], frame.loc[outcome == "b", "engine_b"]]).value_counts()
    tied = pd.concat([frame.loc[tie, "engine_a"], frame.loc[tie, "engine_b"]]).value_counts()
    table = pd.DataFrame({"engine": engines, "rating": rating, "ci_low": low, "ci_high": high})
    table["votes"] = table["engine"].map(votes).fillna(0).astype(int)
    table["wins"] = table["engine"].map(won).fillna(0).astype(int)
    table["ties"] = table["engine"].map(tied).fillna(0).astype(int)
    table["losses"] = table["votes"] - table["wins"] - table["ties"]
    table["preliminary"] = table["votes"] < min_votes
    table = table.sort_values(["ci_low", "rating"], ascending=False, ignore_index=True)
    table[["rating", "ci_low", "ci_high"]] = table[["rating", "ci_low", "ci_high"]].round(1)
    table.insert(0, "rank", range(1, len(table) + 1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rates = np.where(games > 0, wins / games, np.nan)
    order = list(table["engine"])
    win_rates = pd.DataFrame(rates, index=engines, columns=engines).loc[order, order]
    latency = latency_stats(frame).reindex(order)
    return Leaderboard(table[columns], win_rates, latency, len(frame), rounds, min_votes)
