"""Style-controlled Bradley-Terry: ratings with covariates for how a reply was delivered, not what it said.

As Chatbot Arena's style control does for answer length and markdown, each vote's log-odds of "A wins" is
``theta_A - theta_B + beta . x``, where ``x`` holds the vote's style differences, here the reply duration
and the voice-to-voice latency, each as ``(A - B) / (A + B)`` and standardised over the votes (a missing
figure counts as no difference). ``theta`` is then the engine's strength at equal duration and latency:
an engine that wins only because its replies are longer or faster loses that edge. Ties and both-bad
count half, as in :mod:`.ratings`. The fit is Newton's method on the logistic log-likelihood with a weak
Gaussian prior (mean-zero ``theta``) and the raw ratings' pseudo-votes (:mod:`.ratings`: ``PSEUDO_VOTES`` of
each result of every pair played, here at no style difference); the 95 % intervals come from the same
Bayesian bootstrap: Dirichlet weights on the votes and the pseudo-votes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from .ratings import PRIOR, PSEUDO_VOTES, SCALE, to_elo

COVARIATES = ("duration", "latency")


@dataclass
class StyleFit:
    """Style-controlled Elo ratings (engine order as given), their intervals and the covariate effects."""

    engines: list[str]
    rating: np.ndarray
    ci_low: np.ndarray
    ci_high: np.ndarray
    covariates: list[str]
    coefficients: np.ndarray  # Elo points per standard deviation of each covariate (positive: more wins)

    def table(self) -> pd.DataFrame:
        """``engine, style_rating, style_ci_low, style_ci_high`` (rounded)."""
        return pd.DataFrame(
            {"engine": self.engines, "style_rating": self.rating, "style_ci_low": self.ci_low, "style_ci_high": self.ci_high}
        ).round({"style_rating": 1, "style_ci_low": 1, "style_ci_high": 1})


def normalised_difference(a: pd.Series, b: pd.Series) -> np.ndarray:
    """``(a - b) / (a + b)`` per vote; NaN where either is missing or both are zero."""
    a_values, b_values = a.to_numpy(dtype=np.float64), b.to_numpy(dtype=np.float64)
    total = a_values + b_values
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (a_values - b_values) / total, np.nan)


def standardise(raw: np.ndarray, names: list[str]) -> tuple[np.ndarray, list[str]]:
    """Columns z-scored over their present values, missing values set to 0; constant or empty columns dropped."""
    keep, columns = [], []
    for index, name in enumerate(names):
        column = raw[:, index]
        present = column[~np.isnan(column)]
        if present.size < 2 or float(present.std()) < 1e-9:
            continue
        keep.append(np.nan_to_num((column - present.mean()) / present.std(), nan=0.0))
        columns.append(name)
    return (np.column_stack(keep) if keep else np.zeros((raw.shape[0], 0))), columns


def design(frame: pd.DataFrame, engines: list[str], features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The design matrix ``[e_A - e_B, features]`` and the targets (1 A won, 0 B won, 0.5 tie / both bad)."""
    index = {name: n for n, name in enumerate(engines)}
    a = frame["engine_a"].map(index).to_numpy(dtype=np.int64)
    b = frame["engine_b"].map(index).to_numpy(dtype=np.int64)
    rows = np.arange(len(frame))
    pairs = np.zeros((len(frame), len(engines)))
    pairs[rows, a] += 1.0
    pairs[rows, b] -= 1.0
    outcome = frame["outcome"].to_numpy()
    target = np.where(outcome == "a", 1.0, np.where(outcome == "b", 0.0, 0.5))
    return np.hstack([pairs, features]), target


def fit_logistic(
    x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None, *, prior: float = PRIOR, tol: float = 1e-9, max_iter: int = 100, start: np.ndarray | None = None
) -> np.ndarray:
    """Maximum a-posteriori logistic regression without intercept (soft targets allowed), by damped Newton
    from ``start`` (default zeros)."""
    weights = np.ones(len(y)) if weights is None else weights
    params = np.zeros(x.shape[1]) if start is None else start.copy()
    eye = np.eye(x.shape[1])
    for _ in range(max_iter):
        p = 1.0 / (1.0 + np.exp(-(x @ params)))
        grad = x.T @ (weights * (y - p)) - prior * params
        hessian = (x * (weights * p * (1.0 - p))[:, None]).T @ x + prior * eye
        step = np.linalg.solve(hessian, grad)
        size = float(np.abs(step).max())
        params = params + step * min(1.0, 2.0 / max(size, 1e-300))
        if size < tol:
            break
    return params


def _elo(params: np.ndarray, k: int) -> np.ndarray:
    theta = params[..., :k]
    return to_elo(theta - theta.mean(-1, keepdims=True))


def _pseudo_votes(pairs: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """One row per result (first engine wins, loses, tie) of every pair played, at no style difference."""
    first = pairs[np.arange(len(pairs)), np.argmax(pairs != 0, axis=1)]  # +1 or -1: A or B is the lower index
    played = np.unique(pairs * first[:, None], axis=0)  # each pair once, the lower index first
    x = np.zeros((3 * len(played), width))
    x[:, : pairs.shape[1]] = np.repeat(played, 3, axis=0)
    return x, np.tile([1.0, 0.0, 0.5], len(played))


def style_controlled(
    frame: pd.DataFrame, covariates: pd.DataFrame, *, rounds: int = 200, seed: int | None = 0, prior: float = PRIOR, pseudo_votes: float = PSEUDO_VOTES
) -> StyleFit:
    """Fit the votes of ``frame`` (engine_a, engine_b, outcome) with the raw covariate columns of
    ``covariates`` (same rows; each a normalised A-B difference, NaN when unknown)."""
    engines = sorted({str(e) for e in frame["engine_a"]} | {str(e) for e in frame["engine_b"]})
    k = len(engines)
    features, names = standardise(covariates.to_numpy(dtype=np.float64), list(covariates.columns))
    x, y = design(frame, engines, features)
    pseudo_x, pseudo_y = _pseudo_votes(x[:, :k], x.shape[1])
    x, y = np.vstack([x, pseudo_x]), np.concatenate([y, pseudo_y])
    alpha = np.concatenate([np.ones(len(y) - len(pseudo_y)), np.full(len(pseudo_y), pseudo_votes)])
    params = fit_logistic(x, y, alpha, prior=prior)
    rng = np.random.default_rng(seed)
    samples = np.empty((rounds, k))
    for index in range(rounds):  # each draw starts from the full fit: a few Newton steps each
        weights = alpha.sum() * rng.dirichlet(alpha)
        samples[index] = _elo(fit_logistic(x, y, weights, prior=prior, tol=1e-6, start=params), k)
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
    return StyleFit(engines, _elo(params, k), low, high, names, SCALE * params[k:])
