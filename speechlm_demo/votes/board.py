"""The full leaderboard: raw and style-controlled Bradley-Terry ratings, judge means beside them, the rank
correlation of each judge with the human ranking, and which votes were left out and why.

Blind ratings count only the votes of rounds that did not give an engine away (identity leaks) and, when
asked, not those of flagged outlier voters. The raw votes stay in the store and in the export.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..timeline import LATENCY_FROM
from .integrity import VOTER, annotate
from .ratings import Leaderboard, leaderboard
from .style_control import StyleFit, normalised_difference, style_controlled

JUDGES: dict[str, int] = {  # judge -> +1 when higher is better, -1 when lower is better
    "dnsmos_ovrl": 1,
    "dnsmos_sig": 1,
    "dnsmos_bak": 1,
    "roundtrip_wer": -1,
    "words_per_minute": 1,
    "duration_s": 1,
    "leading_silence_ms": -1,
    "loudness_lufs": 1,
    "clipping": -1,
    "voice_to_voice_ms": -1,
}
VOTE_COLUMNS = ["vote_id", "created_at", "tag", "engine_a", "engine_b", "outcome", "status_a", "status_b", "latency_a_ms", "latency_b_ms", "timeline_a", "timeline_b", "identity_leak"]


def vote_columns() -> list[str]:
    """The vote columns :func:`build_board` reads."""
    return [*VOTE_COLUMNS, VOTER]


@dataclass
class Board:
    """Everything the leaderboard command and tab show."""

    raw: Leaderboard
    style: StyleFit | None
    judge_means: pd.DataFrame  # engine x judge
    judge_tau: dict[str, dict[str, float | int | None]]
    judged: pd.DataFrame  # one row per judged reply that was counted (engine + judge columns), for plots
    excluded: dict[str, int] = field(default_factory=dict)
    outliers: list[str] = field(default_factory=list)

    def table(self) -> pd.DataFrame:
        """The raw table with the style-controlled rating and the judge means joined on."""
        table = self.raw.table.copy()
        if table.empty:
            return table
        if self.style is not None:
            table = table.merge(self.style.table(), on="engine", how="left")
        means = self.judge_means.add_prefix("mean_").reset_index()
        return table.merge(means, on="engine", how="left") if not means.empty else table

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form: the raw board's fields, with per engine the style-controlled rating and the
        judge means, plus the judge/human rank correlations and the exclusions."""
        doc = self.raw.to_dict()
        style = self.style.table().set_index("engine") if self.style is not None else pd.DataFrame()
        for row in doc["engines"]:
            engine = row["engine"]
            row.update({k: _num(v) for k, v in style.loc[engine].items()} if engine in style.index else {"style_rating": None, "style_ci_low": None, "style_ci_high": None})
            means = self.judge_means.loc[engine] if engine in self.judge_means.index else pd.Series(dtype=float)
            row["judges"] = {name: _num(value) for name, value in means.items()}
        doc["style_control"] = {
            "covariates": self.style.covariates if self.style else [],
            "coefficients_elo_per_sd": {n: _num(round(float(c), 1)) for n, c in zip(self.style.covariates, self.style.coefficients, strict=True)} if self.style else {},
        }
        doc["judge_human_kendall_tau"] = self.judge_tau
        doc["excluded"] = self.excluded
        doc["outlier_voters"] = len(self.outliers)
        return doc

    def format(self) -> str:
        """Plain-text report."""
        if self.raw.table.empty:
            return "no votes yet" + _exclusions(self.excluded)
        columns = ["rank", "engine", "rating", "ci_low", "ci_high", "style_rating", "style_ci_low", "style_ci_high", "votes", "preliminary"]
        table = self.table()
        raw = self.raw.format().split("\n\n")
        parts = [raw[0] + _exclusions(self.excluded), table[[c for c in columns if c in table]].to_string(index=False)]
        if not self.judge_means.empty:
            parts.append("Judge means per engine:\n" + self.judge_means.round(3).to_string())
        if self.judge_tau:
            lines = [f"  {name}: tau {_fmt(v['tau'])} over {v['engines']} engines" for name, v in self.judge_tau.items()]
            parts.append("Kendall tau of each judge (oriented: higher = better) with the human rating:\n" + "\n".join(lines))
        if self.style is not None and self.style.covariates:
            effects = ", ".join(f"{n} {c:+.1f}" for n, c in zip(self.style.covariates, self.style.coefficients, strict=True))
            parts.append(f"Style control: Elo points per standard deviation of the A-B difference: {effects}")
        parts += raw[2:]
        return "\n\n".join(parts)


def _num(value: Any) -> float | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else float(value)


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:+.2f}"


def _exclusions(excluded: dict[str, int]) -> str:
    words = {"identity_leaks": "vote(s) whose reply named an engine", "outlier_votes": "vote(s) of flagged outlier voters"}
    parts = [f"{n} {words.get(what, what)}" for what, n in excluded.items() if n]
    return f"; not counted: {', '.join(parts)}" if parts else ""


def reply_durations(votes: pd.DataFrame, judgements: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Per vote, the seconds of reply audio of side A and B: the judged duration, else the turn record's
    ``reply_audio_ms`` (first to last audio out)."""
    out = []
    for side in ("a", "b"):
        from_record = votes[f"timeline_{side}"].map(_reply_audio_s) if f"timeline_{side}" in votes else pd.Series(np.nan, index=votes.index)
        judged = pd.Series(np.nan, index=votes.index)
        if not judgements.empty:
            durations = judgements[judgements["side"] == side].set_index("vote_id")["duration_s"]
            judged = votes["vote_id"].map(durations).astype(float)
        out.append(judged.fillna(from_record))
    return out[0], out[1]


def _reply_audio_s(timeline: Any) -> float:
    try:
        doc = json.loads(timeline) if isinstance(timeline, str) else (timeline or {})
        return float(doc.get("metrics", {}).get("reply_audio_ms")) / 1000.0
    except (TypeError, ValueError, AttributeError):
        return math.nan


def judged_replies(votes: pd.DataFrame, judgements: pd.DataFrame) -> pd.DataFrame:
    """The judgements of the replies of ``votes`` (those scored: the engine's own ``ok`` replies, not a fallback's),
    with their engine; ``voice_to_voice_ms`` only where it is measured from
    :data:`~speechlm_demo.timeline.LATENCY_FROM`, like the vote rows' latencies."""
    if judgements.empty or votes.empty:
        return pd.DataFrame(columns=["engine", *JUDGES])
    if {"status_a", "status_b"} <= set(votes.columns):  # rows judged before fallback replies were skipped
        own = pd.concat([votes.loc[votes[f"status_{s}"] == "ok", "vote_id"] + f"\t{s}" for s in "ab"])
        rows = judgements[(judgements["vote_id"] + "\t" + judgements["side"]).isin(own)]
    else:
        rows = judgements[judgements["vote_id"].isin(votes["vote_id"])]
    if "voice_to_voice_ms" in rows:  # only the figure measured from where the vote rows' latencies are (not old rows')
        origin = rows["voice_to_voice_from"] if "voice_to_voice_from" in rows else pd.Series(None, index=rows.index, dtype=object)
        rows = rows.assign(voice_to_voice_ms=rows["voice_to_voice_ms"].where(origin == LATENCY_FROM))
    return rows[["engine", *[j for j in JUDGES if j in rows]]]


def kendall_taus(rating: pd.Series, means: pd.DataFrame) -> dict[str, dict[str, float | int | None]]:
    """Kendall tau-b between the human rating and each judge's engine means (oriented so that +1 = agree)."""
    from scipy.stats import kendalltau

    out: dict[str, dict[str, float | int | None]] = {}
    for judge, sign in JUDGES.items():
        if judge not in means:
            continue
        both = pd.concat([rating, sign * means[judge]], axis=1, join="inner").dropna()
        tau = p = None
        if len(both) >= 3:
            result = kendalltau(both.iloc[:, 0], both.iloc[:, 1])
            tau = None if math.isnan(result.statistic) else round(float(result.statistic), 3)
            p = None if math.isnan(result.pvalue) else round(float(result.pvalue), 4)
        out[judge] = {"tau": tau, "p_value": p, "engines": len(both)}
    return out


def build_board(
    votes: pd.DataFrame,
    judgements: pd.DataFrame,
    *,
    rounds: int = 1000,
    style_rounds: int = 200,
    min_votes: int = 30,
    exclude_outliers: bool = False,
    voter: str = VOTER,
    seed: int | None = 0,
) -> Board:
    """The board of the votes (the :func:`vote_columns` of the store) and the judgements table."""
    marked = annotate(votes, judgements, voter) if not votes.empty else votes.assign(identity_leak="", outlier_voter=False)
    leaking = marked["identity_leak"] != ""
    outlier = marked["outlier_voter"].astype(bool) & exclude_outliers
    counted = marked[~leaking & ~outlier].reset_index(drop=True)
    excluded = {"identity_leaks": int(leaking.sum()), "outlier_votes": int((outlier & ~leaking).sum())}
    outliers = sorted(set(marked.loc[marked["outlier_voter"].astype(bool), voter].astype(str))) if not marked.empty else []
    raw = leaderboard(counted, rounds=rounds, min_votes=min_votes, seed=seed)
    style = None
    if not counted.empty and counted[["engine_a", "engine_b"]].stack().nunique() >= 2:
        duration_a, duration_b = reply_durations(counted, judgements)
        covariates = pd.DataFrame(
            {
                "duration": normalised_difference(duration_a, duration_b),
                "latency": normalised_difference(counted["latency_a_ms"].astype(float), counted["latency_b_ms"].astype(float)),
            }
        )
        style = style_controlled(counted, covariates, rounds=style_rounds, seed=seed)
    judged = judged_replies(counted, judgements)
    means = judged.groupby("engine").mean(numeric_only=True) if not judged.empty else pd.DataFrame()
    taus = kendall_taus(raw.table.set_index("engine")["rating"], means) if not means.empty and not raw.table.empty else {}
    return Board(raw, style, means, taus, judged.reset_index(drop=True), excluded, outliers)
