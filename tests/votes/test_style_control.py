"""Style-controlled Bradley-Terry recovers planted strengths when one engine's replies are longer or faster."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from speechlm_demo.votes.ratings import SCALE, leaderboard
from speechlm_demo.votes.style_control import normalised_difference, standardise, style_controlled

STRENGTH = {"plain": 0.0, "strong": 0.6, "padded": 0.0}  # log-strengths; "padded" is no better than "plain"
DURATION = {"plain": 4.0, "strong": 4.0, "padded": 9.0}  # ... but its replies are much longer
LATENCY = {"plain": 800.0, "strong": 800.0, "padded": 500.0}  # ... and faster
LENGTH_EFFECT, SPEED_EFFECT = 2.5, 1.2  # logit per unit of (A-B)/(A+B): voters like long and fast replies


def synthetic_votes(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    engines = list(STRENGTH)
    rows = []
    for _ in range(n):
        a, b = rng.choice(engines, size=2, replace=False)
        da, db = (DURATION[e] * rng.lognormal(0, 0.5) for e in (a, b))
        la, lb = (LATENCY[e] * rng.lognormal(0, 0.3) for e in (a, b))
        logit = STRENGTH[a] - STRENGTH[b] + LENGTH_EFFECT * (da - db) / (da + db) - SPEED_EFFECT * (la - lb) / (la + lb)
        p = 1 / (1 + np.exp(-logit))
        draw = rng.random()
        outcome = "tie" if abs(draw - p) < 0.03 else ("a" if draw < p else "b")
        rows.append({"engine_a": a, "engine_b": b, "outcome": outcome, "duration_a": da, "duration_b": db, "latency_a_ms": la, "latency_b_ms": lb, "status_a": "ok", "status_b": "ok"})
    votes = pd.DataFrame(rows)
    covariates = pd.DataFrame(
        {
            "duration": normalised_difference(votes["duration_a"], votes["duration_b"]),
            "latency": normalised_difference(votes["latency_a_ms"], votes["latency_b_ms"]),
        }
    )
    return votes, covariates


def test_style_control_recovers_planted_strengths() -> None:
    votes, covariates = synthetic_votes(6000)
    raw = leaderboard(votes, rounds=50).table.set_index("engine")["rating"]
    assert raw["padded"] - raw["plain"] > 120  # the raw rating rewards the long, fast replies
    fit = style_controlled(votes, covariates, rounds=40)
    style = pd.Series(fit.rating, index=fit.engines)
    truth = pd.Series({e: s * SCALE for e, s in STRENGTH.items()})
    truth -= truth.mean()
    assert (style - 1000 - truth).abs().max() < 40, (style - 1000, truth)
    low, high = pd.Series(fit.ci_low, index=fit.engines), pd.Series(fit.ci_high, index=fit.engines)
    assert (low < style).all() and (style < high).all() and (high - low < 100).all()
    effects = dict(zip(fit.covariates, fit.coefficients, strict=True))
    assert effects["duration"] > 0 and effects["latency"] < 0  # longer helps, slower hurts


def test_covariates_that_cannot_help_are_dropped() -> None:
    raw = np.array([[0.1, np.nan], [-0.3, np.nan], [np.nan, np.nan], [0.2, np.nan]])
    features, names = standardise(raw, ["duration", "latency"])
    assert names == ["duration"] and features.shape == (4, 1)
    assert features[2, 0] == 0.0 and features[:, 0].std() > 0
    votes, _ = synthetic_votes(300, seed=3)
    nothing = pd.DataFrame({"duration": np.full(len(votes), np.nan), "latency": np.zeros(len(votes))})
    fit = style_controlled(votes, nothing, rounds=10)  # no usable covariate: plain Bradley-Terry
    raw_board = leaderboard(votes, rounds=10).table.set_index("engine")["rating"]
    assert fit.covariates == [] and fit.rating == pytest.approx(raw_board.loc[fit.engines].to_numpy(), abs=0.1)


def test_normalised_difference_handles_missing_and_zero() -> None:
    a = pd.Series([3.0, None, 0.0, 1.0])
    b = pd.Series([1.0, 2.0, 0.0, 3.0])
    out = normalised_difference(a, b)
    assert out[0] == 0.5 and np.isnan(out[1]) and np.isnan(out[2]) and out[3] == -0.5


def test_a_pair_seen_one_way_gets_a_wide_interval() -> None:
    # one vote, or an engine that never lost: resampling the votes alone gives a zero-width "95 %" interval
    for rows in ([("x", "y", "a")], [("x", "y", "a"), ("y", "x", "b"), ("z", "x", "tie"), ("z", "y", "a")]):
        votes = pd.DataFrame(rows, columns=["engine_a", "engine_b", "outcome"])
        covariates = pd.DataFrame({"duration": np.linspace(-0.2, 0.2, len(votes)), "latency": np.nan})
        fit = style_controlled(votes, covariates, rounds=100)
        assert (fit.ci_high - fit.ci_low > 100).all(), (fit.ci_low, fit.ci_high)
        assert ((fit.ci_low <= fit.rating) & (fit.rating <= fit.ci_high)).all()
