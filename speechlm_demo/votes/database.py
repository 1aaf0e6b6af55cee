"""Where the vote database is and how the store connects to it.

``$SPEECHLM_DB_URL`` selects the database (``postgresql+psycopg://...`` for multi-replica hosting; any
SQLAlchemy URL); otherwise the file is ``votes.sqlite3`` in ``$SPEECHLM_DATA_DIR`` (default ``./data``).
:func:`open_engine` gives :class:`~.store.VoteStore` its SQLAlchemy engine: SQLite in WAL mode with a busy
timeout, Postgres with a connect timeout, and for a read-only store a database that refuses writes itself.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from .read_only import connect_read_only

DB_URL_ENV = "SPEECHLM_DB_URL"
DATA_DIR_ENV = "SPEECHLM_DATA_DIR"
CONNECT_TIMEOUT_S = 5  # libpq's connect_timeout (Postgres) unless the URL sets one: a dead host fails, not hangs


def data_dir() -> Path:
    """``$SPEECHLM_DATA_DIR`` or ``./data``."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def default_url(directory: Path | None = None) -> str:
    """``$SPEECHLM_DB_URL``, else SQLite in the data directory (the folder is made when the store opens)."""
    url = os.environ.get(DB_URL_ENV)
    if url:
        return url
    return f"sqlite:///{((directory or data_dir()) / 'votes.sqlite3').resolve()}"


def open_engine(url: str, busy_timeout_s: float, *, read_only: bool) -> tuple[sa.Engine, Path | None]:
    """A SQLAlchemy engine for ``url`` and the SQLite file it uses (None: not a SQLite file).

    ``busy_timeout_s`` is how long a SQLite writer waits for the lock. ``read_only``: SQLite is opened
    ``mode=ro`` and Postgres transactions begin READ ONLY; otherwise SQLite runs in WAL mode. A malformed URL
    or a missing driver raises SQLAlchemy's error, ImportError or ValueError.
    """
    is_sqlite = url.startswith("sqlite")
    options: dict[str, Any] = {"pool_pre_ping": not is_sqlite}
    if is_sqlite:  # sqlite3's timeout is SQLite's busy_timeout: how long a writer waits for the lock
        options["connect_args"] = {"timeout": busy_timeout_s, "check_same_thread": False}
    elif _libpq_without_timeout(url):
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    database = sa.make_url(url).database if is_sqlite else None
    file = Path(database).resolve() if database and database != ":memory:" and not database.startswith("file:") else None
    if read_only and file is not None:
        options["creator"] = partial(connect_read_only, file, busy_timeout_s)
    engine = sa.create_engine(url, **options)
    if read_only and engine.dialect.name == "postgresql":  # each transaction BEGINs READ ONLY
        engine = engine.execution_options(postgresql_readonly=True)
    if is_sqlite and not read_only:  # the journal mode is the writers' to set
        sa.event.listen(engine, "connect", _sqlite_pragmas)
    return engine, file


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a committed vote survives any crash of the app (kill -9 included); only an OS crash or
    # power cut can undo the last commits. FULL (an fsync per vote) made p99 > 20 ms at 70 votes/s here.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _libpq_without_timeout(url: str) -> bool:
    """Whether ``url`` is Postgres through a libpq driver (psycopg, psycopg2) and names no connect_timeout."""
    try:
        parsed = sa.make_url(url)
    except (SQLAlchemyError, ValueError):
        return False
    return parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() in ("psycopg", "psycopg2") and "connect_timeout" not in parsed.query
