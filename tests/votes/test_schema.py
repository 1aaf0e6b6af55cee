"""The judgements table is part of the store's one schema: made with the votes table, made again with it,
upgraded with it, and never created by a read."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import sqlalchemy as sa

from speechlm_demo.judges.records import JudgementStore, read_judgements
from speechlm_demo.votes.store import VoteStore
from tests.votes.conftest import make_record


def tables(path: Path) -> set[str]:
    with sqlite3.connect(path) as conn:
        return {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_opening_the_store_makes_the_judgements_table(store: VoteStore, db_path: Path) -> None:
    assert {"votes", "judgements"} <= tables(db_path)
    assert read_judgements(store).empty and "dnsmos_ovrl" in read_judgements(store).columns


def test_judgements_are_written_after_the_database_file_was_deleted(store: VoteStore, db_path: Path) -> None:
    records = JudgementStore(store)
    first = make_record()
    store.add(first)
    records.open(first.vote_id, "a", "alpha", "")
    for path in db_path.parent.glob("votes.sqlite3*"):
        path.unlink()
    second = make_record()
    records.open(second.vote_id, "a", "alpha", "Moshi")  # the first write after the loss: the schema is made again
    records.finish(second.vote_id, "a", {"status": "done", "dnsmos_ovrl": 3.1})
    assert store.add(second) is True
    fresh = VoteStore(f"sqlite:///{db_path}")
    judged = read_judgements(fresh).set_index("vote_id")
    assert list(judged.index) == [second.vote_id] and judged.loc[second.vote_id, "dnsmos_ovrl"] == 3.1
    assert judged.loc[second.vote_id, "identity_leak"] == "Moshi" and fresh.count() == 1
    fresh.close()


def test_reading_judgements_creates_and_inspects_nothing(store: VoteStore) -> None:
    record = make_record()
    store.add(record)
    JudgementStore(store).open(record.vote_id, "b", "beta", "")
    statements: list[str] = []
    sa.event.listen(store.engine, "before_cursor_execute", lambda _c, _cur, statement, *_: statements.append(statement))
    for _ in range(3):  # three Leaderboard loads
        assert len(read_judgements(store)) == 1
    assert len(statements) == 3 and all(s.lstrip().upper().startswith("SELECT") for s in statements), statements


def test_an_older_store_gets_the_judgements_table_and_its_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:  # a judgements table from before the latency origin was recorded
        conn.execute(
            "CREATE TABLE judgements (vote_id VARCHAR(32) NOT NULL, side VARCHAR(1) NOT NULL, engine VARCHAR(64) NOT NULL, "
            "created_at DATETIME NOT NULL, status VARCHAR(8) NOT NULL, identity_leak TEXT NOT NULL, voice_to_voice_ms FLOAT, "
            "PRIMARY KEY (vote_id, side))"
        )
        conn.execute("INSERT INTO judgements VALUES ('v1', 'a', 'alpha', '2026-11-30 12:00:00', 'done', '', 410.0)")
    store = VoteStore(f"sqlite:///{path}")
    old = read_judgements(store)
    assert "votes" in tables(path) and old.loc[0, "voice_to_voice_ms"] == 410.0 and old["voice_to_voice_from"].isna().all()
    store.close()
