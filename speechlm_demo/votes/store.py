"""The vote store: one row (one transaction) per blind vote, SQLite (WAL) by default, any SQLAlchemy URL.

A vote row carries the whole round behind it: both engines and their sides, the outcome, a hash of the
input audio, both replies' transcripts, statuses and latencies, the listening-session tag and the app and
engine versions. ``round_id`` is unique, so a round (one pair of replies shown to one voter) can be
voted on once; a retried write of the same vote (same ``vote_id``) is recognised and not stored twice.

``$SPEECHLM_DB_URL`` selects another database (``postgresql+psycopg://...`` for multi-replica hosting);
otherwise the file is ``votes.sqlite3`` in ``$SPEECHLM_DATA_DIR`` (default ``./data``): see :mod:`.database`.

The store creates the whole schema (:mod:`.schema`: the votes and the judgements tables) once, here.
Opening is safe when several replicas start together on an empty database (the schema is created under a
Postgres advisory lock, and a lost race on SQLite is recognised), and a store that could not be opened
tries again at its next use instead of staying off. A SQLite file deleted while the app runs (its data
folder removed) is noticed before each write: the folder and the schema are made again, so a vote is never
written to a file that no longer exists.

A write waits at most :data:`BUSY_TIMEOUT_S` (1 s) for a database another writer holds, then raises
:class:`StoreUnavailable` (the vote is spooled, see :mod:`.pending`); writes soon after one gave up wait only
:data:`AFTER_FAILURE_WAIT_S`. Read-only users open with ``create=False``: nothing is made where there is no store,
and nothing is ever written (:mod:`.read_only`: a store made by an older version is read without being migrated).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from .database import DATA_DIR_ENV as DATA_DIR_ENV  # re-exported: callers find the store's places here
from .database import DB_URL_ENV as DB_URL_ENV
from .database import data_dir as data_dir
from .database import default_url, open_engine
from .read_only import present_columns, select_present
from .record import OUTCOMES as OUTCOMES  # re-exported: callers import the vote types from the store
from .record import VoteRecord
from .schema import metadata, votes_table

log = logging.getLogger(__name__)

BUSY_TIMEOUT_S = 1.0  # how long a write waits for a database locked by another writer before giving up
AFTER_FAILURE_WAIT_S = 0.1  # the wait of writes soon after one gave up (the database is most likely still locked)
SCHEMA_LOCK_KEY = 0x5EEC_0001  # pg_advisory_xact_lock key serialising schema creation across replicas
SCHEMA_ATTEMPTS = 5

_INSERT = votes_table.insert()


class StoreError(RuntimeError):
    """Base of the store's errors."""


class StoreUnavailable(StoreError):
    """The database cannot be reached or written right now; the write may be retried."""


class StoreMissing(StoreError):
    """An existing store was asked for (a read-only command) and there is none at that place."""


class DuplicateVote(StoreError):
    """A different vote for this round is already stored."""


class VoteStore:
    """Thread-safe, multi-process-safe vote storage behind a SQLAlchemy engine.

    ``lazy``: a database that cannot be opened yet does not raise here; every use tries again (and raises
    :class:`StoreUnavailable` while it still fails). Otherwise opening failures raise at once.
    ``create=False`` (readers such as the CLI's exports): open an existing store only; a SQLite file that does
    not exist, or a database without the votes table, raises :class:`StoreMissing` and nothing is made. Such a
    store never writes (writes raise :class:`StoreError`; SQLite is opened ``mode=ro``, Postgres transactions
    begin READ ONLY) and reads an older store's schema as it is: the columns added since read as NULL.
    """

    def __init__(
        self, url: str | None = None, *, busy_timeout_s: float = BUSY_TIMEOUT_S, lazy: bool = False, create: bool = True
    ) -> None:
        self.url = url or default_url()
        self.is_sqlite = self.url.startswith("sqlite")
        self.read_only = not create
        try:
            self.engine, self._file = open_engine(self.url, busy_timeout_s, read_only=self.read_only)
        except (SQLAlchemyError, ImportError, ValueError) as exc:  # a malformed URL or a missing driver: no retry helps
            raise StoreError(f"cannot use the vote store URL {self.url!r}: {exc}") from exc
        self.busy_timeout_s = busy_timeout_s
        self._identity: tuple[int, int] | None = None
        self._present: dict[str, set[str]] | None = None  # a reader's columns per table (None: the whole schema)
        # SQLite has one writer at a time; queueing this process's writers here avoids SQLite's sleeping
        # busy handler (tail latency). Other processes still wait on busy_timeout. A writer waits for this
        # lock and the database's together at most its ``wait_s``, so one stuck write never stalls the others.
        self._write_lock = threading.Lock() if self.is_sqlite else None
        self._schema_lock = threading.Lock()
        self._gave_up_at = -math.inf  # when a write last gave up on a locked or unreachable database
        self._ready = False
        if self.read_only:
            self._check_exists()
            return
        try:
            self._ensure_schema()
        except StoreUnavailable as exc:
            if not lazy:
                raise
            log.error("%s; the store tries again at its next use", exc)

    def _ensure_schema(self) -> None:
        """Create the schema if this store has not yet (or its SQLite file vanished); StoreUnavailable if not
        possible now; :class:`StoreError` on a read-only store (no write is made through it)."""
        if self.read_only:
            raise StoreError(f"the vote store {self.describe()} was opened read-only (create=False): nothing is written")
        if self._ready and not self._file_replaced():
            return
        with self._schema_lock:
            if self._ready and not self._file_replaced():
                return
            if self._ready:
                log.error("the vote database %s was deleted or replaced while in use; making it again", self._file)
                self.engine.dispose()  # pooled connections still point at the deleted file
                self._ready = False
            try:
                self._create_schema()
            except (SQLAlchemyError, OSError) as exc:
                where = f" (data folder {self._file.parent})" if self._file is not None else ""
                raise StoreUnavailable(f"cannot open the vote store {self.describe()}{where}: {exc}") from exc
            self._identity = self._file_identity()
            self._ready = True

    def _create_schema(self) -> None:
        if self._file is not None:
            self._file.parent.mkdir(parents=True, exist_ok=True)
        for attempt in range(1, SCHEMA_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":  # replicas starting together wait for each other here
                        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": SCHEMA_LOCK_KEY})
                    metadata.create_all(conn)
                self._add_new_columns()
                return
            except SQLAlchemyError:
                if self._has_tables():  # another process created them between our check and our CREATE
                    self._add_new_columns()
                    return
                if attempt == SCHEMA_ATTEMPTS:
                    raise
                time.sleep(0.05 * attempt)

    def _check_exists(self) -> None:
        """:class:`StoreMissing` unless the database exists and has the votes table (checked without making either);
        notes the columns each table has."""
        if self.is_sqlite and self._file is not None and not self._file.is_file():
            raise StoreMissing(f"there is no vote store at {self._file}")
        try:
            with self.engine.connect() as conn:
                self._present = present_columns(conn, metadata)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot open the vote store {self.describe()}: {exc}") from exc
        if votes_table.name not in self._present:
            raise StoreMissing(f"{self.describe()} holds no vote store (it has no {votes_table.name} table)")

    def _has_tables(self) -> bool:
        """Whether every table of the schema exists (another process may have just made them)."""
        try:
            with self.engine.connect() as conn:
                inspector = sa.inspect(conn)
                return all(inspector.has_table(name) for name in metadata.tables)
        except SQLAlchemyError:
            return False

    def _file_identity(self) -> tuple[int, int] | None:
        if self._file is None:
            return None
        try:
            info = self._file.stat()
        except OSError:
            return None
        return info.st_dev, info.st_ino

    def _file_replaced(self) -> bool:
        return self._file is not None and self._file_identity() != self._identity

    def _add_new_columns(self) -> None:
        """A store made by an older version lacks nullable columns added since: add them (old rows get NULL)."""
        inspector = sa.inspect(self.engine)
        for table in metadata.tables.values():
            present = {column["name"] for column in inspector.get_columns(table.name)}
            missing = [c for c in table.columns if c.name not in present and c.nullable]
            if missing:
                with self._transaction(self.busy_timeout_s) as conn:
                    for column in missing:
                        kind = column.type.compile(dialect=self.engine.dialect)
                        conn.execute(sa.text(f"ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}"))

    def describe(self) -> str:
        """The URL without a password."""
        return sa.make_url(self.url).render_as_string(hide_password=True)

    @contextlib.contextmanager
    def _transaction(self, wait_s: float) -> Iterator[sa.Connection]:
        """One write transaction that waits at most ``wait_s`` for locks: this process's other writers (SQLite),
        then the database's lock held by another connection (SQLite's busy_timeout, Postgres's lock_timeout).
        Raises :class:`StoreUnavailable` when this process's writers keep the lock that long, SQLAlchemy's
        errors otherwise."""
        now = time.monotonic()
        if now - self._gave_up_at < self.busy_timeout_s:  # e.g. the judgement rows of a vote that was just spooled
            wait_s = min(wait_s, AFTER_FAILURE_WAIT_S)
        deadline = now + wait_s
        if self._write_lock is not None and not self._write_lock.acquire(timeout=max(wait_s, 0.0)):
            self._gave_up_at = time.monotonic()
            raise StoreUnavailable(f"vote store {self.describe()} busy: another write of this process took over {wait_s:.1f} s")
        try:
            with self._noting_failure(), self.engine.begin() as conn:
                left_ms = max(1, int((deadline - time.monotonic()) * 1000))
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql(f"PRAGMA busy_timeout = {left_ms}")
                elif conn.dialect.name == "postgresql":  # ends with the transaction (set_config(..., true))
                    conn.execute(sa.text("SELECT set_config('lock_timeout', :ms, true)"), {"ms": f"{left_ms}ms"})
                try:
                    yield conn
                finally:
                    if conn.dialect.name == "sqlite":  # the pooled connection keeps the store's own timeout
                        conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(self.busy_timeout_s * 1000)}")
        finally:
            if self._write_lock is not None:
                self._write_lock.release()

    @contextlib.contextmanager
    def _noting_failure(self) -> Iterator[None]:
        """Remember when a write fails for want of the database (locked, unreachable): for a while after that,
        other writes wait only briefly (:data:`AFTER_FAILURE_WAIT_S`); a write that succeeds ends the while."""
        try:
            yield
        except sa.exc.OperationalError:
            self._gave_up_at = time.monotonic()
            raise
        self._gave_up_at = -math.inf

    def add(self, record: VoteRecord, *, wait_s: float | None = None) -> bool:
        """Store one vote in one transaction. True if written now, False if this exact vote was already stored.

        ``wait_s`` (default: the store's ``busy_timeout_s``): how long to wait for a database locked by other
        writers before giving up. Raises :class:`DuplicateVote` when another vote for the round exists and
        :class:`StoreUnavailable` when the database cannot be written (the caller keeps the vote and retries).
        """
        self._ensure_schema()
        try:
            with self._transaction(self.busy_timeout_s if wait_s is None else wait_s) as conn:
                conn.execute(_INSERT, record.to_row())
            return True
        except IntegrityError:
            existing = self._vote_id_of_round(record.round_id)
            if existing == record.vote_id:
                return False
            if existing is None:  # not a round clash: a constraint the record itself breaks
                raise
            raise DuplicateVote(f"round {record.round_id} already has a vote") from None
        except SQLAlchemyError as exc:
            if self.is_sqlite:  # e.g. a connection opened read-only: the next write starts afresh
                self.engine.dispose()
            raise StoreUnavailable(f"vote store {self.describe()} unavailable: {exc}") from exc

    def _vote_id_of_round(self, round_id: str) -> str | None:
        query = sa.select(votes_table.c.vote_id).where(votes_table.c.round_id == round_id)
        with self.reading() as conn:
            return conn.execute(query).scalar_one_or_none()

    @contextlib.contextmanager
    def reading(self) -> Iterator[sa.Connection]:
        """A connection for reads (the schema made first if needed, unless read-only); database errors become
        :class:`StoreUnavailable`."""
        if not self.read_only:
            self._ensure_schema()
        try:
            with self.engine.connect() as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"vote store {self.describe()} unavailable: {exc}") from exc

    @contextlib.contextmanager
    def writing(self, wait_s: float | None = None) -> Iterator[sa.Connection]:
        """One transaction among this process's writers (the schema made first if needed, e.g. after the SQLite
        file was deleted), waiting at most ``wait_s`` (default ``busy_timeout_s``) for locks; database errors
        become :class:`StoreUnavailable`."""
        self._ensure_schema()
        try:
            with self._transaction(self.busy_timeout_s if wait_s is None else wait_s) as conn:
                yield conn
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"vote store {self.describe()} not written: {exc}") from exc

    def select(self, table: sa.Table, names: list[str] | None = None) -> sa.Select[Any]:
        """SELECT ``names`` (default: every column) of ``table``, labelled with their keys (``voter_id``, not
        ``session_id``); on a read-only store, columns (and tables) an older store lacks read as NULL (no rows)."""
        return select_present(table, None if self._present is None else self._present.get(table.name, set()), names)

    def get(self, round_id: str) -> VoteRecord | None:
        """The vote of a round, if any."""
        with self.reading() as conn:
            row = conn.execute(self.select(votes_table).where(votes_table.c.round_id == round_id)).mappings().first()
        return VoteRecord.from_row(dict(row)) if row else None

    def count(self, voter_id: str | None = None, *, since_s: float | None = None) -> int:
        """Number of votes (of one voter; of the last ``since_s`` seconds)."""
        query = sa.select(sa.func.count()).select_from(votes_table)
        if voter_id is not None:
            query = query.where(votes_table.c.voter_id == voter_id)
        if since_s is not None:
            query = query.where(votes_table.c.created_at >= datetime.now(UTC) - timedelta(seconds=since_s))
        with self.reading() as conn:
            return int(conn.execute(query).scalar_one())

    def has_pair_vote(self, voter_id: str, input_sha256: str, engine_1: str, engine_2: str) -> bool:
        """Whether this voter has a vote on this input to these two engines (in either order)."""
        c = votes_table.c
        pair = sa.or_(sa.and_(c.engine_a == engine_1, c.engine_b == engine_2), sa.and_(c.engine_a == engine_2, c.engine_b == engine_1))
        query = sa.select(c.vote_id).where(c.voter_id == voter_id, c.input_sha256 == input_sha256, pair).limit(1)
        with self.reading() as conn:
            return conn.execute(query).first() is not None

    def tags(self) -> dict[str, int]:
        """The listening-session tags of the stored votes and how many votes carry each ("" = no session)."""
        query = sa.select(votes_table.c.tag, sa.func.count()).group_by(votes_table.c.tag).order_by(votes_table.c.tag)
        with self.reading() as conn:
            return {tag: int(count) for tag, count in conn.execute(query)}

    def frame(self, columns: list[str] | None = None, *, tag: str | None = None) -> pd.DataFrame:
        """Votes as a DataFrame (oldest first); ``columns`` limits what is read, ``tag`` to one listening session."""
        query = self.select(votes_table, columns).order_by(votes_table.c.created_at)
        if tag is not None:
            query = query.where(votes_table.c.tag == tag)
        with self.reading() as conn:
            frame = pd.read_sql(query, conn)
        if "created_at" in frame:
            frame["created_at"] = pd.to_datetime(frame["created_at"], utc=True)
        return frame

    def export(self, *, csv: str | os.PathLike[str] | None = None, parquet: str | os.PathLike[str] | None = None) -> int:
        """Write every vote to CSV and/or Parquet (pandas); returns the number of rows."""
        frame = self.frame()
        if csv is not None:
            frame.to_csv(csv, index=False)
        if parquet is not None:
            frame.to_parquet(parquet, index=False)
        return len(frame)

    def close(self) -> None:
        """Release the connection pool."""
        self.engine.dispose()
