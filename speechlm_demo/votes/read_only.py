"""Reading a vote store without writing to it (``VoteStore(create=False)``: the CLI's read-only commands).

A read-only user runs no CREATE and no ALTER: a store made by an older version keeps its schema, and the
columns added since (all nullable) read as NULL, as its old rows would after the app had migrated it. SQLite
files are opened with ``mode=ro`` and Postgres transactions begin READ ONLY (:func:`~.database.open_engine`), so the
database itself refuses any write.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

import sqlalchemy as sa


def connect_read_only(path: Path, timeout_s: float) -> sqlite3.Connection:
    """A connection to the SQLite file ``path`` that cannot write it (``mode=ro``).

    A reader of a WAL database needs its ``-shm`` file and makes it when missing; in a folder it cannot write
    (a read-only copy) it cannot, so such a file is opened as immutable instead, which reads the main file only:
    when a ``-wal`` file with writes not yet in the main file lies beside it, that would miss them, so it is
    refused with a message saying how to copy the store instead."""
    uri = path.as_uri()
    options: dict[str, Any] = {"uri": True, "timeout": timeout_s, "check_same_thread": False}
    conn = sqlite3.connect(f"{uri}?mode=ro", **options)
    try:
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # opening is lazy: this opens the file
        return conn
    except sqlite3.OperationalError:
        conn.close()
        if os.access(path.parent, os.W_OK):
            raise
    wal = path.with_name(f"{path.name}-wal")
    if wal.is_file() and wal.stat().st_size > 0:
        raise sqlite3.OperationalError(
            f"{wal} holds writes not yet in {path.name} and there is no {path.name}-shm in a folder this user cannot "
            "write: reading would miss them. Copy the -shm file too, copy the store into a folder you can write, or "
            "copy it with sqlite3's .backup"
        )
    return sqlite3.connect(f"{uri}?mode=ro&immutable=1", **options)


def present_columns(conn: sa.Connection, metadata: sa.MetaData) -> dict[str, set[str]]:
    """The columns each table of ``metadata`` has in the database (tables it lacks are left out)."""
    inspector = sa.inspect(conn)
    return {name: {c["name"] for c in inspector.get_columns(name)} for name in metadata.tables if inspector.has_table(name)}


def select_present(table: sa.Table, present: set[str] | None, names: list[str] | None = None) -> sa.Select[Any]:
    """SELECT ``names`` (default: every column) of ``table``, labelled with their keys. ``present``: the columns
    the database has (None: all of them); one it lacks reads as NULL, and a table it lacks (an empty set) as no rows."""
    chosen = [table.c[name] for name in names] if names else list(table.columns)
    if present is None:
        return sa.select(*(c.label(c.key) for c in chosen)).select_from(table)
    query = sa.select(*(c.label(c.key) if c.name in present else sa.type_coerce(sa.null(), c.type).label(c.key) for c in chosen))
    return query.select_from(table) if present else query.where(sa.false())
