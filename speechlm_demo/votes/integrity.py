"""Vote integrity: identity-leaking rounds and outlier voters.

A round whose reply named an engine, model or company (see :mod:`speechlm_demo.judges.identity`; the
verdict is in the ``judgements`` table) is kept in the store and the raw export but not counted in the
blind ratings.

An outlier voter is one whose votes disagree with each pair's consensus far beyond chance, by the
sequential test FastChat's ``elo_analysis.outlier_detect`` runs for Chatbot Arena: walking the voter's
votes in time order (at most ``max_votes``), each vote gets the one-sided p-values of its value (1 first
engine of the pair won, 0 lost, 0.5 tie) among the pair's decisive votes (``P(r <= v)`` and ``P(r >= v)``,
everyone's votes included); the products of ``1 / (2 p)`` are test martingales under "this voter votes
like the crowd", and the voter is flagged once either exceeds ``1 / alpha`` (Ville's inequality bounds the
false-flag rate of an honest voter by ``alpha``). Voters with fewer than ``min_votes`` votes are not tested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

ALPHA = 0.05
MIN_VOTES = 5
MAX_VOTES = 100
VOTER = "voter_id"  # the vote column that says who voted: the voter cookie's id


def first_engine_result(frame: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    """Per vote: its pair ("first\tsecond", engines sorted) and the result for the first engine (1, 0 or 0.5)."""
    a, b = frame["engine_a"].astype(str), frame["engine_b"].astype(str)
    first = a.where(a < b, b)
    pair = first + "\t" + a.where(a >= b, b)
    outcome = frame["outcome"]
    winner = a.where(outcome == "a", b.where(outcome == "b", ""))
    result = np.where(winner == "", 0.5, np.where(winner == first, 1.0, 0.0))
    return pair.reset_index(drop=True), result.astype(np.float64)


def outlier_voters(frame: pd.DataFrame, voter: str = VOTER, *, alpha: float = ALPHA, min_votes: int = MIN_VOTES, max_votes: int = MAX_VOTES) -> set[str]:
    """The voters (values of column ``voter``) the sequential test flags; ``frame`` is in time order."""
    if frame.empty:
        return set()
    pair, result = first_engine_result(frame)
    codes, pairs = pd.factorize(pair)
    decisive = result != 0.5
    games = np.bincount(codes[decisive], minlength=len(pairs))
    wins = np.bincount(codes[decisive], weights=(result[decisive] == 1.0), minlength=len(pairs))
    # per vote, the one-sided p-values of its value among its pair's decisive votes
    n, won = games[codes].astype(np.float64), wins[codes]
    with np.errstate(invalid="ignore", divide="ignore"):
        p_upper = np.where(result >= 1.0, 1.0, (n - won) / n)  # P(r <= vote)
        p_lower = np.where(result <= 0.0, 1.0, won / n)  # P(r >= vote)
        step_upper = np.where(n > 0, -np.log(2.0 * p_upper), 0.0)  # log(1 / (2p)); +inf when p = 0
        step_lower = np.where(n > 0, -np.log(2.0 * p_lower), 0.0)
    voters = frame[voter].astype(str).to_numpy()
    counts = pd.Series(voters).value_counts()
    threshold = np.log(1.0 / alpha)
    flagged: set[str] = set()
    for who in counts[counts >= min_votes].index:
        mine = np.flatnonzero(voters == who)[:max_votes]
        upper, lower = np.cumsum(step_upper[mine]), np.cumsum(step_lower[mine])
        if (upper > threshold).any() or (lower > threshold).any():
            flagged.add(str(who))
    return flagged


def leaks_by_vote(judgements: pd.DataFrame) -> pd.Series:
    """``vote_id -> names`` that either reply of the vote gave away ("" when none)."""
    if judgements.empty:
        return pd.Series(dtype=object)
    leaking = judgements[judgements["identity_leak"].fillna("") != ""]
    return leaking.groupby("vote_id")["identity_leak"].agg(lambda s: ", ".join(sorted(set(", ".join(s).split(", ")), key=str.lower)))


def annotate(votes: pd.DataFrame, judgements: pd.DataFrame, voter: str = VOTER) -> pd.DataFrame:
    """``votes`` with ``identity_leak`` (names, "" none) and ``outlier_voter`` (bool) columns added."""
    out = votes.copy()
    out["identity_leak"] = out["vote_id"].map(leaks_by_vote(judgements)).fillna("") if "vote_id" in out else ""
    out["outlier_voter"] = out[voter].astype(str).isin(outlier_voters(out, voter)) if voter in out else False
    return out
