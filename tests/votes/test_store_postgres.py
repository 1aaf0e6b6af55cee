"""The same store on PostgreSQL (multi-replica hosting).

Uses ``SPEECHLM_TEST_DB_URL`` (a scratch database: its votes table is emptied), else starts a throwaway
cluster when PostgreSQL's server binaries and psycopg are installed, else skips.
"""

from __future__ import annotations

import glob
import importlib.util
import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from speechlm_demo.votes.schema import judgements_table
from speechlm_demo.votes.store import DuplicateVote, StoreUnavailable, VoteStore, votes_table
from tests.votes.conftest import make_record


def _server_bin() -> Path | None:
    found = shutil.which("initdb") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)), None)
    return Path(found).parent if found else None


@pytest.fixture(scope="module")
def pg_url() -> Iterator[str]:
    """A PostgreSQL URL: the given scratch database or a throwaway local cluster."""
    if os.environ.get("SPEECHLM_TEST_DB_URL"):
        yield os.environ["SPEECHLM_TEST_DB_URL"]
        return
    binaries = _server_bin()
    if importlib.util.find_spec("psycopg") is None or binaries is None:
        pytest.skip("PostgreSQL server binaries and psycopg are needed (or set SPEECHLM_TEST_DB_URL)")
    assert binaries is not None
    folder = Path(tempfile.mkdtemp(prefix="speechlm-pg-"))  # not under pytest's root-only folder
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(folder, "postgres")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    data = folder / "data"

    def run(*args: str) -> None:
        subprocess.run([*as_user, *args], check=True, capture_output=True)

    run(str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    server = f"-k {folder} -p {port} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(str(binaries / "pg_ctl"), "-D", str(data), "-o", server, "-l", str(folder / "log"), "-w", "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[VoteStore]:
    store = VoteStore(pg_url)
    with store.engine.begin() as conn:
        conn.execute(sa.delete(votes_table))
        conn.execute(sa.delete(judgements_table))
    yield store
    store.close()


def test_round_trip_and_one_vote_per_round(pg_store: VoteStore) -> None:
    record = make_record("pg-round", latency_b_ms=None)
    assert pg_store.add(record) is True and pg_store.add(record) is False
    with pytest.raises(DuplicateVote):
        pg_store.add(make_record("pg-round", outcome="tie"))
    assert pg_store.get("pg-round") == record and pg_store.count() == 1


def test_concurrent_writers_with_double_submits(pg_store: VoteStore) -> None:
    records = [make_record(f"pg-{n}") for n in range(200)]
    results: list[bool] = []

    def write(chunk: list) -> None:
        results.extend(pg_store.add(r) for r in chunk)

    threads = [threading.Thread(target=write, args=(records[i::5],)) for i in range(5)]
    threads += [threading.Thread(target=write, args=(records[i::5],)) for i in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results.count(True) == 200 and results.count(False) == 200
    assert set(pg_store.frame(["vote_id"])["vote_id"]) == {r.vote_id for r in records}


def test_unreachable_server_is_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(StoreUnavailable):
        VoteStore(f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres?connect_timeout=2")


def test_replicas_opening_an_empty_database_together_all_succeed(pg_url: str) -> None:
    from tests.votes.conftest import open_together

    errors: list[BaseException] = []
    admin = sa.create_engine(pg_url)
    for _ in range(10):
        with admin.begin() as conn:  # an empty database for every trial
            conn.execute(sa.text("DROP TABLE IF EXISTS votes, judgements"))
        errors += open_together(pg_url)
    admin.dispose()
    assert errors == [], errors[:3]


def test_a_store_that_could_not_open_tries_again(pg_url: str) -> None:
    name = f"late_{os.getpid()}"
    late_url = sa.make_url(pg_url).set(database=name).render_as_string(hide_password=False)
    admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
        store = VoteStore(late_url, lazy=True)  # its database does not exist yet: no exception, voting stays on
        with pytest.raises(StoreUnavailable):
            store.add(make_record())
        with admin.connect() as conn:
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
        record = make_record()
        assert store.add(record) is True and store.get(record.round_id) == record  # no restart needed
        store.close()
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE {name}"))
    finally:
        admin.dispose()


def test_a_write_to_a_locked_table_gives_up_within_about_a_second(pg_store: VoteStore, pg_url: str) -> None:
    import time

    holder = sa.create_engine(pg_url)
    outcome: list[object] = []

    def write() -> None:
        started = time.monotonic()
        try:
            pg_store.add(make_record())
            outcome.append("stored")
        except StoreUnavailable:
            outcome.append(time.monotonic() - started)

    try:
        with holder.begin() as conn:  # another session holds the table (a migration, a LOCK TABLE)
            conn.execute(sa.text("LOCK TABLE votes IN ACCESS EXCLUSIVE MODE"))
            writer = threading.Thread(target=write)
            writer.start()
            writer.join(timeout=10)  # without a lock timeout the write would wait as long as the lock is held
            assert not writer.is_alive() and len(outcome) == 1 and isinstance(outcome[0], float), outcome
            assert outcome[0] < 5.0, outcome
        writer.join()
        record = make_record()
        assert pg_store.add(record) is True and pg_store.get(record.round_id) == record  # the lock timeout ended with its transaction
        with pg_store.engine.connect() as conn:
            assert conn.execute(sa.text("SHOW lock_timeout")).scalar() == "0"
    finally:
        holder.dispose()


def test_a_libpq_url_gets_a_connect_timeout_unless_it_names_one() -> None:
    from speechlm_demo.votes.database import _libpq_without_timeout

    assert _libpq_without_timeout("postgresql+psycopg://u@db.example/votes")
    assert not _libpq_without_timeout("postgresql+psycopg://u@db.example/votes?connect_timeout=9")
    assert not _libpq_without_timeout("sqlite:////tmp/v.sqlite3")


def test_a_read_only_store_reads_in_read_only_transactions(pg_store: VoteStore, pg_url: str) -> None:
    record = make_record("pg-reader")
    pg_store.add(record)
    reader = VoteStore(pg_url, create=False)
    try:
        assert reader.get("pg-reader") == pg_store.get("pg-reader") and reader.count() == 1
        with reader.engine.connect() as conn:
            assert conn.exec_driver_sql("SHOW transaction_read_only").scalar() == "on"
            with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
                conn.execute(sa.delete(votes_table))
        assert pg_store.count() == 1
    finally:
        reader.close()
