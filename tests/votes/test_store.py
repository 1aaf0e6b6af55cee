"""The vote store: round trips, one vote per round, exports, and writers in threads and processes."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC
from pathlib import Path

import pandas as pd
import pytest

from speechlm_demo.votes.store import DuplicateVote, StoreUnavailable, VoteRecord, VoteStore
from tests.votes.conftest import locked, make_record

WRITER = Path(__file__).with_name("writer.py")


def test_vote_round_trip(store: VoteStore) -> None:
    record = make_record(outcome="both_bad", status_b="failed", latency_b_ms=None, audio_dir="/x/y")
    assert store.add(record) is True
    back = store.get(record.round_id)
    assert back == record
    assert back is not None and back.created_at.tzinfo is not None and back.created_at.utcoffset() == UTC.utcoffset(None)
    assert store.count() == 1 and store.count("session-1") == 1 and store.count("other") == 0
    frame = store.frame()
    assert list(frame["vote_id"]) == [record.vote_id]
    assert json.loads(frame.loc[0, "timeline_a"]) == record.timeline_a
    assert pd.isna(frame.loc[0, "latency_b_ms"])


def test_texts_any_engine_can_send_are_stored(store: VoteStore, tmp_path: Path) -> None:
    # an emoji split across two JSON-escaped stream chunks stays two surrogates; SQLite refused them (and NUL)
    record = make_record(reply_text_a="sure \ud83d\ude00", reply_text_b="half \ud83d of it", user_text="nul\x00here")
    assert store.add(record) is True
    back = store.get(record.round_id)
    assert back is not None and back.reply_text_a == "sure \N{GRINNING FACE}"
    assert back.reply_text_b == "half \ufffd of it" and back.user_text == "nul\ufffdhere"
    assert VoteRecord.from_row(json.loads(record.to_json())) == back  # the spool keeps the same text


def test_sqlite_runs_in_wal_mode(store: VoteStore, db_path: Path) -> None:
    store.add(make_record())
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 200
    assert sqlite3.connect(db_path).execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # persistent


def test_one_vote_per_round_and_idempotent_retries(store: VoteStore) -> None:
    record = make_record("round-1")
    assert store.add(record) is True
    assert store.add(record) is False  # the same vote again (a retry): recognised, not stored twice
    with pytest.raises(DuplicateVote):
        store.add(make_record("round-1", outcome="b"))
    assert store.count() == 1 and store.get("round-1").outcome == "a"  # type: ignore[union-attr]


def test_records_are_validated() -> None:
    with pytest.raises(ValueError, match="outcome"):
        make_record(outcome="A")
    with pytest.raises(ValueError, match="two different engines"):
        make_record(engine_a="alpha", engine_b="alpha")


def test_export_csv_and_parquet(store: VoteStore, tmp_path: Path) -> None:
    records = [make_record(outcome=o) for o in ("a", "b", "tie", "both_bad")]
    for record in records:
        store.add(record)
    assert store.export(csv=tmp_path / "v.csv", parquet=tmp_path / "v.parquet") == 4
    for frame in (pd.read_csv(tmp_path / "v.csv"), pd.read_parquet(tmp_path / "v.parquet")):
        assert sorted(frame["vote_id"]) == sorted(r.vote_id for r in records)
        assert sorted(frame["outcome"]) == ["a", "b", "both_bad", "tie"]
        assert set(frame.columns) >= {"voter_id", "engine_a", "engine_b", "input_sha256", "reply_text_a", "latency_b_ms", "app_version", "tag"}


def test_locked_database_is_reported_unavailable(store: VoteStore, db_path: Path) -> None:
    store.add(make_record())
    with locked(db_path), pytest.raises(StoreUnavailable):
        store.add(make_record())
    store.add(make_record())
    assert store.count() == 2


def test_a_write_to_a_locked_database_gives_up_within_about_a_second(db_path: Path) -> None:
    store = VoteStore(f"sqlite:///{db_path}")  # the app's default wait, not the tests' 0.2 s
    store.add(make_record())
    with locked(db_path):
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.add(make_record())
        waited = time.monotonic() - started
    assert 0.5 < waited < 5.0, waited  # it waited for the lock a little (it used to hang for 30 s)
    store.add(make_record())
    assert store.count() == 2
    with store.engine.connect() as conn:  # the pooled connection is back to the store's own busy timeout
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 1000
    store.close()


def test_a_background_retry_waits_briefly_and_never_holds_up_a_users_write(db_path: Path) -> None:
    from speechlm_demo.votes.pending import PendingVotes

    store = VoteStore(f"sqlite:///{db_path}", busy_timeout_s=4.0)
    pending = PendingVotes(store, db_path.with_name("spool.jsonl"), retry_s=3600, retry_wait_s=0.2)
    queued = make_record()
    pending.add(queued)
    timings: dict[str, float] = {}

    def retry() -> None:
        started = time.monotonic()
        pending.drain()
        timings["retry"] = time.monotonic() - started

    with locked(db_path):
        worker = threading.Thread(target=retry)
        worker.start()
        time.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(StoreUnavailable):
            store.add(make_record(), wait_s=1.0)  # a user's vote meanwhile: its own wait, not the retry's and its own
        timings["user"] = time.monotonic() - started
        worker.join()
    assert timings["retry"] < 2.0 and timings["user"] < 2.0, timings
    assert pending.drain() == 1 and store.get(queued.round_id) == queued
    pending.close()
    store.close()


def test_unopenable_store_is_reported(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(StoreUnavailable, match="cannot open"):
        VoteStore(f"sqlite:///{tmp_path / 'file' / 'votes.sqlite3'}")


def test_threads_writing_at_once_lose_and_duplicate_nothing(db_path: Path) -> None:
    store = VoteStore(f"sqlite:///{db_path}")
    records = [make_record(f"round-{n}", voter_id=f"s{n % 7}") for n in range(400)]
    results: list[bool] = []
    lock = threading.Lock()

    def write(chunk: list) -> None:
        mine = [store.add(r) for r in chunk]
        with lock:
            results.extend(mine)

    # Every record is written by two threads (a double submit): each must be stored exactly once.
    chunks = [records[i::8] for i in range(8)] * 2
    threads = [threading.Thread(target=write, args=(c,)) for c in chunks]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 400 and results.count(False) == 400
    frame = store.frame(["vote_id", "round_id"])
    assert len(frame) == 400 and frame["round_id"].is_unique
    assert set(frame["vote_id"]) == {r.vote_id for r in records}


def writer(url: str, prefix: str, count: int) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WRITER), url, prefix, str(count)], stdout=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_processes_writing_at_once(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    VoteStore(url).close()  # create the schema once
    procs = [writer(url, f"p{n}", 150) for n in range(4)]
    printed = [proc.communicate(timeout=120)[0].split() for proc in procs]
    assert all(proc.returncode == 0 for proc in procs)
    frame = VoteStore(url).frame(["vote_id", "round_id", "voter_id"])
    assert len(frame) == 600 and frame["vote_id"].is_unique and frame["round_id"].is_unique
    assert set(frame["vote_id"]) == {v for lines in printed for v in lines}
    assert frame.groupby("voter_id").size().to_dict() == {f"p{n}": 150 for n in range(4)}


@pytest.mark.parametrize("after", [50, 200, 500])
def test_process_killed_mid_write_leaves_a_consistent_database(db_path: Path, after: int) -> None:
    url = f"sqlite:///{db_path}"
    VoteStore(url).close()
    proc = writer(url, "k", 1_000_000)
    assert proc.stdout is not None
    committed = [proc.stdout.readline().strip() for _ in range(after)]
    time.sleep(0.01 * (after % 7))  # land somewhere inside a later write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    committed += proc.stdout.read().split()  # ids printed before the kill
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = conn.execute("SELECT vote_id, round_id, timeline_a, outcome FROM votes").fetchall()
    stored = {row[0] for row in rows}
    assert set(committed) <= stored  # everything reported as committed survived the kill
    assert len(stored) - len(committed) <= 1  # at most the write in flight, and then complete
    for vote_id, round_id, timeline, outcome in rows:
        assert round_id == f"k-{vote_id.removeprefix('k-v')}" and outcome == "a"
        assert json.loads(timeline)["pad"] == "x" * 2000
    store = VoteStore(url)
    assert store.add(make_record()) is True  # and the database is writable afterwards
    assert store.count() == len(rows) + 1


def test_a_store_from_before_latency_from_gets_the_column(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # the votes table as it was before the latency origin was recorded
        conn.execute("CREATE TABLE votes (vote_id VARCHAR(32) PRIMARY KEY, round_id VARCHAR(128) NOT NULL)")
    store = VoteStore(f"sqlite:///{path}")
    store.close()
    with sqlite3.connect(path) as conn:
        assert "latency_from" in {row[1] for row in conn.execute("PRAGMA table_info(votes)")}


def test_the_vote_row_names_what_its_latencies_are_measured_from(store: VoteStore) -> None:
    record = make_record(latency_from="reference_speech_end")
    store.add(record)
    back = store.get(record.round_id)
    assert back is not None and back.latency_from == "reference_speech_end"


def test_replicas_opening_an_empty_sqlite_database_together_all_succeed(tmp_path: Path) -> None:
    from tests.votes.conftest import open_together

    errors = [e for trial in range(10) for e in open_together(f"sqlite:///{tmp_path / f'race-{trial}.sqlite3'}")]
    assert errors == []


def test_a_store_that_could_not_open_tries_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from speechlm_demo.server import open_vote_store

    blocker = tmp_path / "data"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(blocker))
    store = open_vote_store()  # the app still gets its store, and voting stays on
    assert store is not None
    with pytest.raises(StoreUnavailable, match="data folder"):
        store.add(make_record())
    blocker.unlink()  # the operator fixes the folder: no restart needed
    record = make_record()
    assert store.add(record) is True and store.count() == 1 and store.get(record.round_id) == record
    store.close()


def test_a_deleted_database_file_is_made_again_before_a_write(store: VoteStore, db_path: Path) -> None:
    store.add(make_record())
    for path in db_path.parent.glob("votes.sqlite3*"):
        path.unlink()
    record = make_record()
    assert store.add(record) is True  # written to a new file, not to the deleted one
    fresh = VoteStore(f"sqlite:///{db_path}")
    assert fresh.get(record.round_id) == record and fresh.count() == 1
    fresh.close()


# The votes table exactly as the code before the session_id -> voter_id rename created it (its CREATE
# statements, compiled for SQLite): the stored column is still called session_id.
OLD_SCHEMA = """
CREATE TABLE votes (
    vote_id VARCHAR(32) NOT NULL, round_id VARCHAR(128) NOT NULL, session_id VARCHAR(128) NOT NULL,
    created_at DATETIME NOT NULL, engine_a VARCHAR(64) NOT NULL, engine_b VARCHAR(64) NOT NULL,
    outcome VARCHAR(8) NOT NULL, input_sha256 VARCHAR(64) NOT NULL, tag VARCHAR(128) NOT NULL,
    status_a VARCHAR(16) NOT NULL, status_b VARCHAR(16) NOT NULL, reply_text_a TEXT NOT NULL,
    reply_text_b TEXT NOT NULL, user_text TEXT NOT NULL, latency_a_ms FLOAT, latency_b_ms FLOAT,
    latency_from VARCHAR(32), timeline_a TEXT NOT NULL, timeline_b TEXT NOT NULL, app_version VARCHAR(64) NOT NULL,
    engine_version_a VARCHAR(128) NOT NULL, engine_version_b VARCHAR(128) NOT NULL, audio_dir TEXT,
    PRIMARY KEY (vote_id), CONSTRAINT uq_votes_round UNIQUE (round_id),
    CONSTRAINT ck_votes_outcome CHECK (outcome IN ('a', 'b', 'tie', 'both_bad')),
    CONSTRAINT ck_votes_two_engines CHECK (engine_a <> engine_b)
);
CREATE INDEX ix_votes_session_id ON votes (session_id);
CREATE INDEX ix_votes_created_at ON votes (created_at);
INSERT INTO votes VALUES ('old-vote', 'old-round', 'voter-old', '2026-11-30 12:00:00.000000', 'alpha', 'beta', 'tie',
    'ab', 'club', 'ok', 'failed', 'hi', '', 'hello', 410.0, NULL, 'user_speech_end', '{"n": 1}', '{}', '0.1.0',
    'cfg-a', 'cfg-b', NULL);
"""


def test_a_store_from_before_the_voter_id_rename_reads_and_writes(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(OLD_SCHEMA)
    store = VoteStore(f"sqlite:///{path}")
    old = store.get("old-round")
    assert old is not None and (old.voter_id, old.outcome, old.tag, old.latency_a_ms, old.timeline_a) == ("voter-old", "tie", "club", 410.0, {"n": 1})
    assert store.count("voter-old") == 1 and store.has_pair_vote("voter-old", "ab", "beta", "alpha")
    new = make_record("new-round", voter_id="voter-new")
    assert store.add(new) is True and store.get("new-round") == new and store.count("voter-new") == 1
    frame = store.frame(["round_id", "voter_id"])
    assert list(frame["voter_id"]) == ["voter-old", "voter-new"]
    assert store.export(csv=tmp_path / "v.csv") == 2
    exported = pd.read_csv(tmp_path / "v.csv")
    assert "session_id" not in exported.columns and list(exported["voter_id"]) == ["voter-old", "voter-new"]
    store.close()
    with sqlite3.connect(path) as conn:  # the database itself is unchanged in shape: the column is still session_id
        assert "voter_id" not in {row[1] for row in conn.execute("PRAGMA table_info(votes)")}
        assert conn.execute("SELECT session_id FROM votes WHERE round_id = 'new-round'").fetchone() == ("voter-new",)


def test_a_spooled_vote_written_before_the_rename_still_loads() -> None:
    record = make_record(voter_id="voter-spooled")
    line = json.loads(record.to_json())
    line["session_id"] = line.pop("voter_id")  # how the old code spooled a vote it could not store yet
    assert VoteRecord.from_row(line) == record
