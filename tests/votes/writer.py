"""A separate process that writes votes to a store and prints each vote id once it is committed.

Usage: ``python writer.py URL PREFIX COUNT``. Used for multi-process and kill-mid-write tests.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[2]), str(Path(__file__).resolve().parent)]

from conftest import make_record

from speechlm_demo.votes.store import VoteStore


def main() -> None:
    url, prefix, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    store = VoteStore(url)
    for n in range(count):
        record = make_record(f"{prefix}-{n}", vote_id=f"{prefix}-v{n}", voter_id=prefix, timeline_a={"n": n, "pad": "x" * 2000})
        store.add(record)
        sys.stdout.write(record.vote_id + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
