"""Votes against a data folder that is read-only, then deleted, while the app runs; prints one JSON line.

Run as an unprivileged user (root ignores file modes): ``python -m tests.votes.durability_probe DIR``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sys
from pathlib import Path

import numpy as np

from speechlm_demo.compare import Comparison, SideResult
from speechlm_demo.votes.rounds import BlindArena
from speechlm_demo.votes.store import StoreUnavailable, VoteStore
from tests.votes.conftest import make_entry

ENTRIES = [make_entry("alpha"), make_entry("beta")]


def vote(arena: BlindArena, voter: str, level: float) -> str:
    """One complete round; the message the user gets (or why the vote was not saved)."""
    blind = arena.start_round(voter, np.full(1600, level, np.float32), 16_000)
    ok = np.full(800, 0.2, np.float32)
    arena.record_replies(blind.round_id, voter, Comparison(SideResult(blind.engines[0].id, "ok", "", ok, 16_000), SideResult(blind.engines[1].id, "ok", "", ok, 16_000)))
    for side in "ab":
        arena.start_listening(blind.round_id, voter, side)  # type: ignore[arg-type]
        arena.mark_listened(blind.round_id, voter, side)  # type: ignore[arg-type]
    try:
        return arena.submit_vote(blind.round_id, voter, "a").message
    except StoreUnavailable as exc:
        return f"NOT SAVED: {exc}"


def stored(data: Path) -> int:
    reader = VoteStore(f"sqlite:///{data / 'votes.sqlite3'}")
    try:
        return reader.count()
    finally:
        reader.close()


def main() -> None:
    data = Path(sys.argv[1]) / "data"
    os.environ["SPEECHLM_DATA_DIR"] = str(data)
    result: dict = {}
    VoteStore(lazy=True).close()  # the folder and the database exist, then the host makes them read-only
    for path in (data / "votes.sqlite3", data):
        path.chmod(0o555)
    store = VoteStore(lazy=True)
    arena = BlindArena(store, lambda: ENTRIES, min_listen_s=0.0, rng=random.Random(0))
    result["read_only"] = vote(arena, "v1", 0.01)
    result["pending_in_memory"] = len(arena.pending)
    for path in (data, data / "votes.sqlite3"):
        path.chmod(0o755)
    result["writable_again"] = vote(arena, "v2", 0.02)
    result["stored_after_writable"] = stored(data)
    shutil.rmtree(data)  # an operator deletes the data folder while the app runs
    result["after_delete"] = vote(arena, "v3", 0.03)
    result["stored_after_delete"] = stored(data)
    arena.close()
    store.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
