"""Read-only users (``create=False``: ``leaderboard``, ``votes export``) never write: a store made by an older
version is read as it is (the columns added since read as missing), also from a read-only copy."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest

from speechlm_demo.cli import main
from speechlm_demo.judges.records import JudgementStore, read_judgements
from speechlm_demo.votes.store import StoreError, VoteStore
from tests.votes.conftest import make_record
from tests.votes.test_durability import unprivileged

REPO = Path(__file__).resolve().parents[2]


def older_store(path: Path) -> list[str]:
    """A store as an older version left it: without the nullable ``latency_from`` and ``voice_to_voice_from``
    columns, holding two votes (one judged) and made read-only (0444). Returns the vote ids."""
    store = VoteStore(f"sqlite:///{path}")
    records = [make_record(outcome="a"), make_record(outcome="b", tag="other")]
    for record in records:
        store.add(record)
    JudgementStore(store).open(records[0].vote_id, "a", "alpha", "")
    store.close()
    with sqlite3.connect(path) as conn:
        conn.execute("ALTER TABLE votes DROP COLUMN latency_from")
        conn.execute("ALTER TABLE judgements DROP COLUMN voice_to_voice_from")
    conn.close()
    path.chmod(0o444)
    return [r.vote_id for r in records]


def columns(path: Path, table: str) -> set[str]:
    with sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True) as conn:
        names = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
    conn.close()
    return names


def snapshot(path: Path) -> tuple[bytes, int]:
    return path.read_bytes(), path.stat().st_mtime_ns


def test_reading_an_older_store_writes_nothing_and_reads_the_new_columns_as_missing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "votes.sqlite3"
    vote_ids = older_store(path)
    before = snapshot(path)
    store = VoteStore(f"sqlite:///{path}", create=False)
    frame = store.frame()
    assert sorted(frame["vote_id"]) == sorted(vote_ids) and frame["latency_from"].isna().all()
    assert frame["latency_a_ms"].tolist() == [512.5, 512.5]
    assert store.count() == 2 and store.tags() == {"other": 1, "test": 1}
    first = store.get(frame.loc[0, "round_id"])
    assert first is not None and first.vote_id == frame.loc[0, "vote_id"] and first.latency_from is None
    assert store.export(csv=tmp_path / "v.csv") == 2 and pd.read_csv(tmp_path / "v.csv")["latency_from"].isna().all()
    judged = read_judgements(store)
    assert list(judged["vote_id"]) == [vote_ids[0]] and judged["voice_to_voice_from"].isna().all()
    store.close()
    assert snapshot(path) == before  # root ignores 0444: the bytes and the time show nothing was written
    url = f"sqlite:///{path}"
    assert main(["votes", "export", "--db", url, "--csv", str(tmp_path / "cli.csv")]) == 0
    assert main(["leaderboard", "--db", url, "--json", "--rounds", "5"]) == 0
    assert json.loads(capsys.readouterr().out.split("\n", 1)[1])["votes"] == 2
    assert len(pd.read_csv(tmp_path / "cli.csv")) == 2
    assert snapshot(path) == before
    assert "latency_from" not in columns(path, "votes") and "voice_to_voice_from" not in columns(path, "judgements")
    with pytest.raises(StoreError, match="read-only"):
        VoteStore(url, create=False).add(make_record())


def test_the_cli_reads_a_read_only_copy_of_an_older_store(tmp_path: Path) -> None:
    """A read-only folder holding a read-only database file, read by a user who cannot write either."""
    prefix = unprivileged()
    folder = Path(tempfile.mkdtemp(prefix="speechlm-read-only-"))
    copy = folder / "copy"
    try:
        folder.chmod(0o777)
        copy.mkdir()
        vote_ids = older_store(copy / "votes.sqlite3")
        copy.chmod(0o555)
        before = snapshot(copy / "votes.sqlite3")
        env = dict(os.environ, PYTHONPATH=str(REPO), HOME=str(folder), SPEECHLM_DATA_DIR=str(copy))
        env.pop("SPEECHLM_DB_URL", None)
        runs = [
            subprocess.run([*prefix, sys.executable, "-m", "speechlm_demo", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
            for args in (["votes", "export", "--csv", str(folder / "v.csv")], ["leaderboard", "--json", "--rounds", "5"])
        ]
        assert [run.returncode for run in runs] == [0, 0], [run.stderr[-2000:] for run in runs]
        exported = pd.read_csv(folder / "v.csv")
        assert sorted(exported["vote_id"]) == sorted(vote_ids) and exported["latency_from"].isna().all()
        assert json.loads(runs[1].stdout)["votes"] == 2
        assert snapshot(copy / "votes.sqlite3") == before and sorted(p.name for p in copy.iterdir()) == ["votes.sqlite3"]
    finally:
        copy.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)


def test_a_read_only_copy_with_writes_left_in_its_wal_is_refused_not_read_without_them(tmp_path: Path) -> None:
    """A copy made while the app was writing: the main file, its ``-wal`` holding the latest votes, no ``-shm``,
    in a folder the reader cannot write. Opening it immutable would read the main file only (the latest votes
    silently missing): the command fails saying how to copy the store instead."""
    prefix = unprivileged()
    live = tmp_path / "votes.sqlite3"
    store = VoteStore(f"sqlite:///{live}")
    store.add(make_record(outcome="a"))
    store.close()
    writer = sqlite3.connect(live)
    writer.execute("PRAGMA wal_autocheckpoint=0")  # the app's store is in WAL mode; keep the next write in the WAL
    writer.execute("UPDATE votes SET tag = 'late'")
    writer.commit()
    folder = Path(tempfile.mkdtemp(prefix="speechlm-read-only-"))
    copy = folder / "copy"
    try:
        folder.chmod(0o777)
        copy.mkdir()
        for name in ("votes.sqlite3", "votes.sqlite3-wal"):
            shutil.copy(tmp_path / name, copy / name)
        assert (copy / "votes.sqlite3-wal").stat().st_size > 0
        copy.chmod(0o555)
        env = dict(os.environ, PYTHONPATH=str(REPO), HOME=str(folder), SPEECHLM_DATA_DIR=str(copy))
        env.pop("SPEECHLM_DB_URL", None)
        run = subprocess.run([*prefix, sys.executable, "-m", "speechlm_demo", "votes", "export", "--csv", str(folder / "v.csv")],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        assert run.returncode == 2, run.stderr[-2000:]
        assert "-shm" in run.stderr and ".backup" in run.stderr, run.stderr[-2000:]
        assert not (folder / "v.csv").exists()
    finally:
        writer.close()
        copy.chmod(0o755)
        shutil.rmtree(folder, ignore_errors=True)
