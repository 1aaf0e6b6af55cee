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


def first_engine_result(frame: pd.DataFrame) -> tuple[pd.Series, np.ndarray]:
    """Per vote: its pair ("first\tsecond", engines sorted) and the result for the first engine (1, 0 or 0.5)."""
    a, b = frame["engine_a"].astype(str), frame["engine_b"].astype(str)
    first = a.where(a < b, b)
    pair = first + "\t" + a.where(a >= b, b)
    outcome = frame["outcome"]
    winner = a.where(outcome == "a", b.where(outcome == "b", ""))
    result = np.where(winner == "", 0.5, np.where(winner == first, 1.0, 0.0))
    return pair.reset_index(drop=True), result.astype(np.float64)


def outlier_voters(frame: pd.DataFrame, voter: str = "session_id", *, alpha: float = ALPHA, min_votes: int = MIN_VOTES, max_votes: int = MAX_VOTES) -> set[str]:
    """The voters (values of column ``voter``) the sequential test flags; ``frame`` is in time order."""
    if frame.empty:
        return set()
    pair, result = first_engine_result(frame)
    decisive = result != 0.5
    wins = pd.Series(result[decisive] == 1.0).groupby(pair[decisive].to_numpy()).sum()
    games = pd.Series(decisive[decisive]).groupby(pair[decisive].to_numpy()).size()
    voters = frame[voter].to_numpy()
    counts = pd.Series(voters).value_counts()
    flagged: set[str] = set()
    for who in counts[counts >= min_votes].index:
        mine = np.flatnonzero(voters == who)[:max_votes]
        upper = lower = 0.0  # log martingales
        for index in mine:
            key = pair.iloc[index]
            n = int(games.get(key, 0))
            if n == 0:
                continue
            won = int(wins.get(key, 0))
            vote = result[index]
            p_upper = ((n - won) + (won if vote >= 1.0 else 0)) / n  # P(r <= vote) among decisive votes
            p_lower = (won + ((n - won) if vote <= 0.0 else 0)) / n  # P(r >= vote)
            upper += np.log(1.0 / (2.0 * p_upper)) if p_upper > 0 else np.inf
            lower += np.log(1.0 / (2.0 * p_lower)) if p_lower > 0 else np.inf
            if max(upper, lower) > np.log(1.0 / alpha):
                flagged.add(str(who))
                break
    return flagged


def leaks_by_vote(judgements: pd.DataFrame) -> pd.Series:
    """``vote_id -> names`` that either reply of the vote gave away ("" when none)."""
    if judgements.empty:
        return pd.Series(dtype=object)
    leaking = judgements[judgements["identity_leak"].fillna("") != ""]
    return leaking.groupby("vote_id")["identity_leak"].agg(lambda s: ", ".join(sorted(set(", ".join(s).split(", ")), key=str.lower)))


def annotate(votes: pd.DataFrame, judgements: pd.DataFrame, voter: str = "session_id") -> pd.DataFrame:
    """``votes`` with ``identity_leak`` (names, "" none) and ``outlier_voter`` (bool) columns added."""
    out = votes.copy()
    out["identity_leak"] = out["vote_id"].map(leaks_by_vote(judgements)).fillna("") if "vote_id" in out else ""
    out["outlier_voter"] = out[voter].astype(str).isin(outlier_voters(out, voter)) if voter in out else False
    return out
