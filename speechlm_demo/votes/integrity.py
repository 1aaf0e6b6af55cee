"""Vote integrity: identity-leaking rounds and outlier voters.

A round whose reply named an engine, model or company (see :mod:`speechlm_demo.judges.identity`; the
verdict on the reply texts is in the vote's row, that on what the judges' recogniser heard in the
``judgements`` table) is kept in the store and the raw export but not counted in the blind ratings.

An outlier voter is one whose votes disagree with each pair's consensus far beyond chance, by the
sequential test FastChat's ``elo_analysis.outlier_detect`` runs for Chatbot Arena: walking the voter's
votes in time order (at most ``max_votes``), each vote gets the one-sided p-values of its value (1 first
engine of the pair won, 0 lost, 0.5 tie) among all the pair's votes (``P(r <= v)`` and ``P(r >= v)``,
everyone's votes included, ties as the middle value); the products of ``1 / (2 p)`` are test martingales
under "this voter votes like the crowd" (with three values the expected factor is at most 1), and the voter is
flagged once either exceeds ``1 / alpha`` (Ville's inequality bounds each test's false-flag rate of an
honest voter by ``alpha``, so both together by ``2 alpha``; measured: 0-7 % at ``alpha`` 0.05 in the tests). Voters with fewer than ``min_votes`` votes are not tested. Unlike FastChat, whose reference
is the pair's decisive votes only, a tie is scored against the ties too: there, one tie on a pair everyone
else decided one way got p = 0 and flagged an honest voter at once.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..judges.identity import leak_label, leak_names

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
    games = np.bincount(codes, minlength=len(pairs)).astype(np.float64)
    wins = np.bincount(codes, weights=(result == 1.0), minlength=len(pairs))
    ties = np.bincount(codes, weights=(result == 0.5), minlength=len(pairs))
    # per vote, the one-sided p-values of its value among its pair's votes (its own included: never 0)
    n, won, tied = games[codes], wins[codes], ties[codes]
    p_upper = np.where(result >= 1.0, n, np.where(result > 0.0, n - won, n - won - tied)) / n  # P(r <= vote)
    p_lower = np.where(result <= 0.0, n, np.where(result < 1.0, won + tied, won)) / n  # P(r >= vote)
    step_upper, step_lower = -np.log(2.0 * p_upper), -np.log(2.0 * p_lower)  # log(1 / (2p))
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
    return leaking.groupby("vote_id")["identity_leak"].agg(lambda s: leak_label(leak_names(*s)))


def annotate(votes: pd.DataFrame, judgements: pd.DataFrame, voter: str = VOTER) -> pd.DataFrame:
    """``votes`` with ``identity_leak`` (names, "" none) and ``outlier_voter`` (bool) columns added."""
    out = votes.copy()
    judged = out["vote_id"].map(leaks_by_vote(judgements)).fillna("") if "vote_id" in out else pd.Series("", index=out.index)
    cast = out["identity_leak"].fillna("") if "identity_leak" in out else pd.Series("", index=out.index)
    out["identity_leak"] = [leak_label(leak_names(first, second)) for first, second in zip(cast, judged)]
    out["outlier_voter"] = out[voter].astype(str).isin(outlier_voters(out, voter)) if voter in out else False
    return out
