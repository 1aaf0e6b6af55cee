"""Bradley-Terry ratings, bootstrap intervals, win rates and latency statistics."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from speechlm_demo.benchmarks.vote_backend import synthetic_votes
from speechlm_demo.votes.ratings import PSEUDO_VOTES, SCALE, bootstrap, fit, leaderboard, win_matrix


def votes(*rows: tuple[str, str, str], **extra: list) -> pd.DataFrame:
    """A vote frame from (engine_a, engine_b, outcome) rows; all replies ok unless ``extra`` says otherwise."""
    frame = pd.DataFrame(rows, columns=["engine_a", "engine_b", "outcome"])
    frame["status_a"] = frame["status_b"] = "ok"
    frame["latency_a_ms"] = frame["latency_b_ms"] = np.nan
    for name, values in extra.items():
        frame[name] = values
    return frame


def gap(frame: pd.DataFrame, first: str, second: str, pseudo_votes: float = 0.0) -> float:
    """Rating difference in log-strength units (by default without pseudo-votes: the maximum likelihood)."""
    rating = leaderboard(frame, rounds=20, pseudo_votes=pseudo_votes).table.set_index("engine")["rating"]
    return (rating[first] - rating[second]) / SCALE


def test_two_engines_three_wins_to_one() -> None:
    frame = votes(("x", "y", "a"), ("x", "y", "a"), ("y", "x", "b"), ("y", "x", "a"))
    assert gap(frame, "x", "y") == pytest.approx(math.log(3), abs=0.01)  # p_x / p_y = 3 / 1


def test_pseudo_votes_weigh_one_and_a_half_votes_per_pair() -> None:
    frame = votes(("x", "y", "a"), ("x", "y", "a"), ("y", "x", "b"), ("y", "x", "a"))
    assert gap(frame, "x", "y", PSEUDO_VOTES) == pytest.approx(math.log(3.75 / 1.75), abs=0.01)  # 3 + 0.5 + 0.25 to 1.75
    many = votes(*[("x", "y", "a")] * 300, *[("x", "y", "b")] * 100)
    assert gap(many, "x", "y", PSEUDO_VOTES) == pytest.approx(math.log(3), abs=0.01)  # the votes outweigh them
    one = gap(votes(("x", "y", "a")), "x", "y", PSEUDO_VOTES)
    assert one == pytest.approx(math.log(1.75 / 0.75), abs=0.01)  # ~150 Elo points; 1013 without pseudo-votes


def test_one_lucky_vote_does_not_outrank_a_clear_record() -> None:
    # strong beat weak 80 of 100 times; a new engine beat weak once: its interval is wide, it ranks below strong
    frame = votes(*[("strong", "weak", "a" if i % 10 < 8 else "b") for i in range(100)], ("lucky", "weak", "a"))
    table = leaderboard(frame, rounds=400).table.set_index("engine")
    assert table.loc["strong", "rank"] == 1 and table.loc["lucky", "rank"] == 2
    assert table.loc["lucky", "ci_high"] - table.loc["lucky", "ci_low"] > 1.5 * (table.loc["strong", "ci_high"] - table.loc["strong", "ci_low"])
    assert (table["ci_low"] <= table["rating"]).all() and (table["rating"] <= table["ci_high"]).all()
    one = leaderboard(frame.tail(1), rounds=400).table
    assert (one["ci_high"] - one["ci_low"] > 100).all()  # a single vote is no 95 % certainty (zero-width before)


def test_ties_and_both_bad_count_half() -> None:
    frame = votes(("x", "y", "a"), ("y", "x", "b"), ("x", "y", "tie"), ("x", "y", "both_bad"))
    assert gap(frame, "x", "y") == pytest.approx(math.log(3), abs=0.01)  # 2 + 1/2 + 1/2 = 3 wins to 1
    even = votes(("x", "y", "a"), ("x", "y", "b"), ("x", "y", "tie"), ("y", "x", "both_bad"))
    assert gap(even, "x", "y") == pytest.approx(0.0, abs=1e-9)


def test_win_matrix_by_hand() -> None:
    frame = votes(("x", "y", "a"), ("y", "x", "a"), ("x", "z", "tie"), ("z", "y", "b"))
    assert win_matrix(frame, ["x", "y", "z"]).tolist() == [[0, 1, 0.5], [1, 0, 1], [0.5, 0, 0]]


def test_data_proportional_to_known_strengths_gives_them_back() -> None:
    # Strengths 4 : 2 : 1 -> x beats y 2:1, y beats z 2:1, x beats z 4:1; the likelihood equations hold exactly.
    wins = np.array([[0, 20, 40], [10, 0, 20], [10, 10, 0]], float)
    theta = fit(wins)
    assert theta.sum() == pytest.approx(0.0, abs=1e-12)
    assert theta[0] - theta[1] == pytest.approx(math.log(2), abs=1e-3)
    assert theta[1] - theta[2] == pytest.approx(math.log(2), abs=1e-3)


def test_never_winning_and_disconnected_engines_stay_finite() -> None:
    frame = votes(*[("x", "y", "a")] * 5, ("p", "q", "b"))
    board = leaderboard(frame, rounds=50)
    assert np.isfinite(board.table[["rating", "ci_low", "ci_high"]].to_numpy()).all()
    rating = board.table.set_index("engine")["rating"]
    assert rating["x"] > rating["y"] and rating["q"] > rating["p"]


def test_synthetic_population_recovers_known_strengths() -> None:
    truth = {"a": 1.2, "b": 0.6, "c": 0.1, "d": -0.2, "e": -0.7, "f": -1.0}
    board = leaderboard(synthetic_votes(truth, 100_000, seed=7), rounds=300, seed=1)
    table = board.table.set_index("engine")
    centred = pd.Series(truth) - np.mean(list(truth.values()))
    fitted = (table["rating"] - 1000) / SCALE
    assert (fitted - centred).abs().max() < 0.05
    assert list(board.table["engine"]) == list(centred.sort_values(ascending=False).index)
    truth_elo = 1000 + SCALE * centred
    covered = ((table["ci_low"] <= truth_elo) & (truth_elo <= table["ci_high"])).sum()
    assert covered >= 5  # 95 % intervals: all six, or five by chance
    assert (table["ci_high"] - table["ci_low"]).between(3, 30).all()


def test_bayesian_bootstrap_matches_resampling_votes() -> None:
    frame = synthetic_votes({"a": 0.5, "b": 0.0, "c": -0.5}, 3_000, tie_rate=0.2, seed=3)
    engines = ["a", "b", "c"]
    fast = bootstrap(frame, engines, 400, seed=5)
    rng = np.random.default_rng(6)
    slow = np.array([1000 + SCALE * fit(win_matrix(frame.iloc[rng.integers(0, len(frame), len(frame))], engines)) for _ in range(400)])
    assert fast.std(0) == pytest.approx(slow.std(0), rel=0.2)
    assert fast.mean(0) == pytest.approx(slow.mean(0), abs=3)


def test_leaderboard_counts_order_rates_and_latency() -> None:
    frame = votes(
        ("x", "y", "a"), ("x", "y", "a"), ("x", "y", "a"), ("y", "x", "a"), ("x", "z", "tie"), ("z", "y", "both_bad"),
        status_a=["ok", "ok", "failed", "ok", "ok", "ok"],
        latency_a_ms=[100.0, 200.0, 999.0, 900.0, 300.0, 50.0],
        latency_b_ms=[800.0, 700.0, 600.0, 400.0, 70.0, 500.0],
    )
    board = leaderboard(frame, rounds=100, min_votes=5)
    table = board.table.set_index("engine")
    assert list(board.table["rank"]) == [1, 2, 3]
    assert board.table["ci_low"].is_monotonic_decreasing
    assert table.loc["x", ["votes", "wins", "ties", "losses"]].tolist() == [5, 3, 1, 1]
    assert table.loc["y", ["votes", "wins", "ties", "losses"]].tolist() == [5, 1, 1, 3]
    assert table.loc["z", ["votes", "wins", "ties", "losses"]].tolist() == [2, 0, 2, 0]
    assert table["preliminary"].to_dict() == {"x": False, "y": False, "z": True}
    assert board.win_rates.loc["x", "y"] == 0.75 and board.win_rates.loc["y", "x"] == 0.25
    assert board.win_rates.loc["x", "z"] == 0.5 and np.isnan(board.win_rates.loc["x", "x"])
    assert list(board.win_rates.index) == list(board.table["engine"])
    x = board.latency.loc["x"]
    assert x["replies"] == 5 and x["failed"] == 1 and x["p50_ms"] == 250.0 and x["mean_ms"] == 250.0  # the failed reply's 999 ms is left out
    doc = json.loads(json.dumps(board.to_dict()))
    assert doc["votes"] == 6 and doc["win_rates"]["x"]["x"] is None and doc["engines"][0]["rank"] == 1
    assert "Win rate" in board.format()


def test_empty_leaderboard() -> None:
    board = leaderboard(votes())
    assert board.table.empty and board.format() == "no votes yet" and board.to_dict()["engines"] == []


def test_latency_table_when_no_reply_has_a_latency() -> None:
    # both engines failed ("both bad" is still a vote): the store hands back an all-NULL, object-typed column
    frame = votes(("x", "y", "both_bad"), status_a=["failed"], status_b=["failed"], latency_a_ms=[None], latency_b_ms=[None])
    assert frame["latency_a_ms"].dtype == object
    board = leaderboard(frame, rounds=20)
    assert board.latency.loc["x", "failed"] == 1 and np.isnan(board.latency.loc["x", "p90_ms"])
    assert json.loads(json.dumps(board.to_dict()))["latency"][0]["p50_ms"] is None
