"""Fixtures for the vote tests: a fresh SQLite store, catalogue entries, and vote records."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from speechlm_demo.catalog import EngineEntry
from speechlm_demo.votes.store import VoteRecord, VoteStore


def make_entry(engine_id: str, weight: float = 1.0, duplex: str = "half") -> EngineEntry:
    """A real catalogue entry (the echo engine's class) with a sampling weight."""
    return EngineEntry.model_validate(
        {
            "id": engine_id,
            "label": engine_id.title(),
            "family": "diagnostic",
            "duplex": duplex,
            "class": "speechlm_demo.engines.echo:EchoEngine",
            "accelerators": ["cpu"],
            "licence": "MIT",
            "weight": weight,
        }
    )


def make_record(round_id: str | None = None, **fields: Any) -> VoteRecord:
    """A complete vote record; ``fields`` override the defaults."""
    values: dict[str, Any] = {
        "vote_id": uuid.uuid4().hex,
        "round_id": round_id or uuid.uuid4().hex,
        "voter_id": "session-1",
        "engine_a": "alpha",
        "engine_b": "beta",
        "outcome": "a",
        "input_sha256": "0" * 64,
        "app_version": "0.1.0",
        "engine_version_a": "cfg-a",
        "engine_version_b": "cfg-b",
        "reply_text_a": "hello there",
        "reply_text_b": "good morning",
        "latency_a_ms": 512.5,
        "latency_b_ms": 830.0,
        "timeline_a": {"status": "ok", "metrics": {"voice_to_voice_ms": 512.5}},
        "timeline_b": {"status": "ok", "metrics": {"voice_to_voice_ms": 830.0}},
        "tag": "test",
    }
    values.update(fields)
    return VoteRecord(**values)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """Where the test's SQLite database lives."""
    return tmp_path / "votes.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Iterator[VoteStore]:
    """A fresh SQLite store that gives up on a locked database after 0.2 s."""
    vote_store = VoteStore(f"sqlite:///{db_path}", busy_timeout_s=0.2)
    yield vote_store
    vote_store.close()


@pytest.fixture(autouse=True)
def _data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep every default path (spool, audio, database) inside the test's folder."""
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("SPEECHLM_DB_URL", raising=False)
    monkeypatch.delenv("SPEECHLM_SAVE_AUDIO", raising=False)


@contextmanager
def locked(db_path: Path) -> Iterator[None]:
    """Hold SQLite's write lock from another connection: the store is unavailable for writes meanwhile."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        conn.execute("ROLLBACK")
        conn.close()


def open_together(url: str, replicas: int = 4) -> list[BaseException]:
    """Open ``replicas`` stores on ``url`` (empty) at the same instant (as replicas starting together would);
    returns the errors, then checks that a vote and a judgement can be written and read back."""
    import threading

    barrier = threading.Barrier(replicas)
    errors: list[BaseException] = []

    def open_one() -> None:
        barrier.wait()
        try:
            VoteStore(url).close()
        except BaseException as exc:  # noqa: BLE001 - collected for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(replicas)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if not errors:  # the whole schema is there: a vote and its judgement are written and read back
        from speechlm_demo.judges.records import JudgementStore

        store = VoteStore(url)
        try:
            record = make_record()
            store.add(record)
            JudgementStore(store).open(record.vote_id, "a", record.engine_a, "")
            assert store.get(record.round_id) == record
            assert list(JudgementStore(store).frame()["vote_id"]) == [record.vote_id]
        finally:
            store.close()
    return errors
