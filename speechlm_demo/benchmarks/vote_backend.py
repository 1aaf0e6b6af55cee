"""``python -m speechlm_demo bench-votes``: the two performance targets of the vote backend, measured once.

* ratings: the full leaderboard (Bradley-Terry fit + bootstrap 95 % intervals + win rates + latencies)
  over a synthetic population of votes with known strengths (target: 1 000 rounds x 100 000 votes <= 2 s);
* writes: 50 concurrent voters submitting votes through :meth:`BlindArena.submit_vote` into a fresh
  SQLite store (target: p99 <= 20 ms), every vote read back afterwards. Each voter waits a random
  (exponential) think time between votes, ``think_s`` on average; a real voter must first listen to two
  replies, so 0.25 s is far busier than people can be. ``think_s=0`` measures saturation instead: then
  every vote queues behind the others and latency is just ``voters / throughput``.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..catalog import EngineEntry
from ..compare import Comparison, SideResult
from ..votes.pending import PendingVotes
from ..votes.ratings import leaderboard
from ..votes.rounds import BlindArena
from ..votes.store import VoteStore

log = logging.getLogger(__name__)

TARGET_RATINGS_S = 2.0
TARGET_WRITE_P99_MS = 20.0


def synthetic_votes(strengths: dict[str, float], n: int, *, tie_rate: float = 0.0, seed: int = 0) -> pd.DataFrame:
    """``n`` votes between uniformly drawn pairs; the winner follows Bradley-Terry on log-``strengths``.

    A fraction ``tie_rate`` of the votes are ties regardless of strength. Latencies are drawn around
    ``500 + 100 * index`` ms per engine, with 2 % failed replies.
    """
    rng = np.random.default_rng(seed)
    names = np.array(list(strengths))
    theta = np.array(list(strengths.values()))
    k = len(names)
    a = rng.integers(0, k, n)
    b = (a + rng.integers(1, k, n)) % k
    p_a = 1.0 / (1.0 + np.exp(theta[b] - theta[a]))
    outcome = np.where(rng.random(n) < tie_rate, "tie", np.where(rng.random(n) < p_a, "a", "b"))
    frame = pd.DataFrame({"engine_a": names[a], "engine_b": names[b], "outcome": outcome})
    for side, idx in (("a", a), ("b", b)):
        failed = rng.random(n) < 0.02
        frame[f"status_{side}"] = np.where(failed, "failed", "ok")
        frame[f"latency_{side}_ms"] = np.where(failed, np.nan, rng.normal(500 + 100 * idx, 50))
    return frame


def bench_ratings(votes: int = 100_000, engines: int = 10, rounds: int = 1000) -> dict[str, Any]:
    """Time one full leaderboard computation; also report the worst rating error against the truth."""
    truth = {f"engine-{i}": s for i, s in enumerate(np.linspace(-1.5, 1.5, engines))}
    frame = synthetic_votes(truth, votes, tie_rate=0.1)
    started = time.perf_counter()
    board = leaderboard(frame, rounds=rounds)
    seconds = time.perf_counter() - started
    truth_order = sorted(truth, key=truth.__getitem__, reverse=True)
    return {
        "votes": votes,
        "engines": engines,
        "bootstrap_rounds": rounds,
        "seconds": round(seconds, 3),
        "target_s": TARGET_RATINGS_S,
        "ok": seconds <= TARGET_RATINGS_S,
        "ranking_correct": list(board.table["engine"]) == truth_order,
        "mean_ci_width": round(float((board.table["ci_high"] - board.table["ci_low"]).mean()), 1),
    }


def _entry(engine_id: str) -> EngineEntry:
    return EngineEntry.model_validate(
        {"id": engine_id, "label": engine_id, "family": "diagnostic", "duplex": "half", "class": "speechlm_demo.engines.echo:EchoEngine", "accelerators": ["cpu"], "licence": "MIT"}
    )


def _reply(engine_id: str, rng: np.random.Generator) -> SideResult:
    latency = float(rng.normal(600, 80))
    timeline = {"turn_id": 1, "engine_id": engine_id, "status": "ok", "detail": "", "marks_ms": {"reference_speech_end": 0.0, "first_audio_out": latency}, "metrics": {"voice_to_voice_ref_ms": latency}, "measured_from": {"voice_to_voice_ref_ms": "reference_speech_end"}}
    return SideResult(engine_id, "ok", audio=np.full(1600, 0.1, np.float32), reply_text="a short reply of a few words", timeline=timeline)


def bench_writes(voters: int = 50, votes_per_voter: int = 20, think_s: float = 0.25, directory: Path | None = None) -> dict[str, Any]:
    """``voters`` threads vote at once (each on its own rounds); returns latency percentiles of the submits."""
    with tempfile.TemporaryDirectory(dir=directory) as tmp:
        store = VoteStore(f"sqlite:///{Path(tmp) / 'votes.sqlite3'}")
        entries = [_entry(f"engine-{i}") for i in range(4)]
        # Voters "listen" during their think time, and every round is a different turn (one vote per pair and turn).
        arena = BlindArena(store, lambda: entries, pending=PendingVotes(store, Path(tmp) / "spool.jsonl", retry_s=3600), rate_limit=(votes_per_voter, 60.0), min_listen_s=0.0, save_audio=False)
        rng = np.random.default_rng(0)
        rounds: dict[int, list[str]] = {}
        for voter in range(voters):
            session = f"voter-{voter}"
            rounds[voter] = []
            for turn in range(votes_per_voter):
                blind = arena.start_round(session, np.full(1600, turn * 1e-4, np.float32), 16_000)
                arena.record_replies(blind.round_id, session, Comparison(_reply(blind.engines[0].id, rng), _reply(blind.engines[1].id, rng)))
                for side in ("a", "b"):
                    arena.mark_listened(blind.round_id, session, side)  # type: ignore[arg-type]
                rounds[voter].append(blind.round_id)
        latencies: list[float] = []
        lock = threading.Lock()
        barrier = threading.Barrier(voters)
        spooled = [0] * voters

        def vote(voter: int) -> None:
            mine = []
            pauses = np.random.default_rng(voter).exponential(think_s, votes_per_voter) if think_s > 0 else np.zeros(votes_per_voter)
            barrier.wait()
            for round_id, pause in zip(rounds[voter], pauses):
                time.sleep(pause)
                started = time.perf_counter()
                receipt = arena.submit_vote(round_id, f"voter-{voter}", "a", address=f"10.0.{voter // 250}.{voter % 250}")
                mine.append((time.perf_counter() - started) * 1000.0)
                spooled[voter] += receipt.queued  # waited over the store's busy timeout: kept for retry, not stored
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=vote, args=(v,)) for v in range(voters)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
        stored = store.frame(["vote_id", "round_id"])
        arena.close()
        store.close()
    expected = voters * votes_per_voter
    p50, p99 = np.percentile(latencies, [50, 99])
    return {
        "voters": voters,
        "think_s": think_s,
        "votes": expected,
        "stored": len(stored),
        "spooled": sum(spooled),
        "unique_rounds": int(stored["round_id"].nunique()),
        "p50_ms": round(float(p50), 2),
        "p99_ms": round(float(p99), 2),
        "max_ms": round(float(max(latencies)), 2),
        "votes_per_s": round(expected / wall, 1),
        "target_p99_ms": TARGET_WRITE_P99_MS,
        "ok": float(p99) <= TARGET_WRITE_P99_MS and len(stored) == expected == stored["round_id"].nunique(),
    }


def format_report(report: dict[str, Any]) -> str:
    """Three lines for humans: the two targets, then saturation for information."""
    r, w, sat = report["ratings"], report["writes"], report["saturation"]
    ratings = (
        f"ratings: {r['bootstrap_rounds']} bootstrap rounds x {r['votes']} votes ({r['engines']} engines): "
        f"{r['seconds']:.3f} s (target <= {r['target_s']:g} s) {'PASS' if r['ok'] else 'FAIL'}; "
        f"ranking correct: {r['ranking_correct']}, mean CI width {r['mean_ci_width']} Elo"
    )
    writes = (
        f"writes: {w['voters']} concurrent voters (mean think time {w['think_s']:g} s), {w['votes']} votes, "
        f"{w['stored']} stored ({w['spooled']} spooled): p50 {w['p50_ms']:.2f} ms, p99 {w['p99_ms']:.2f} ms, max {w['max_ms']:.2f} ms "
        f"(target p99 <= {w['target_p99_ms']:g} ms) {'PASS' if w['ok'] else 'FAIL'}; {w['votes_per_s']:.0f} votes/s"
    )
    saturation = (
        f"saturation (no think time, for information): {sat['votes_per_s']:.0f} votes/s, "
        f"p50 {sat['p50_ms']:.1f} ms, p99 {sat['p99_ms']:.1f} ms, {sat['stored']}/{sat['votes']} stored, {sat['spooled']} spooled"
    )
    return f"{ratings}\n{writes}\n{saturation}"
