"""Votes the store could not take yet: kept (in memory and in a spool file) and retried in the background.

A vote is never dropped silently: it is either stored, kept here (on disk, and retried until stored), or
refused with :class:`~speechlm_demo.votes.store.StoreUnavailable` so the user is told. Kept means written
to the spool, a JSON-lines file rewritten atomically and fsynced, so pending votes survive a restart (a new
:class:`PendingVotes` on the same file picks them up); without a spool, or when the spool cannot be
written (a read-only or vanished data folder), the vote is refused rather than held in memory only.
Retries are idempotent: a vote that did reach the database is not stored twice.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from pathlib import Path

from .store import DuplicateVote, StoreUnavailable, VoteRecord, VoteStore

log = logging.getLogger(__name__)


class PendingVotes:
    """A bounded retry queue in front of a :class:`VoteStore`."""

    def __init__(self, store: VoteStore, spool: Path | None = None, *, limit: int = 10_000, retry_s: float = 5.0) -> None:
        self.store = store
        self.spool = spool
        self.limit = limit
        self.retry_s = retry_s
        self._records: dict[str, VoteRecord] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        if spool is not None and spool.exists():
            for line in spool.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    record = VoteRecord.from_row(json.loads(line))
                    self._records[record.vote_id] = record
            if self._records:
                log.warning("%d vote(s) from the spool %s await storing", len(self._records), spool)
                self._ensure_worker()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def add(self, record: VoteRecord) -> None:
        """Keep ``record`` on disk until the store takes it. Raises :class:`StoreUnavailable` if it cannot be
        kept durably (nothing is kept then)."""
        with self._lock:
            if len(self._records) >= self.limit:
                raise StoreUnavailable(f"the vote store is down and {self.limit} votes already wait for it")
            if self.spool is None:
                raise StoreUnavailable("the vote store is down and there is no spool file to keep the vote in")
            self._records[record.vote_id] = record
            try:
                self._save()
            except OSError as exc:
                del self._records[record.vote_id]
                raise StoreUnavailable(f"the vote store is down and the spool {self.spool} cannot be written: {exc}") from exc
        log.warning("vote %s kept for retry (%d pending)", record.vote_id, len(self))
        self._ensure_worker()

    def drain(self) -> int:
        """Try to store every pending vote (oldest first); returns how many left the queue."""
        with self._lock:
            waiting = list(self._records.values())
        done = 0
        for record in waiting:
            try:
                self.store.add(record)
            except StoreUnavailable as exc:
                log.info("store still unavailable (%s); %d vote(s) pending", exc, len(self))
                break
            except DuplicateVote:
                log.error("pending vote %s clashes with another vote for round %s; dropped", record.vote_id, record.round_id)
            except Exception:  # an unexpected error must not stop the retries of the other votes
                log.exception("pending vote %s could not be stored; kept for the next retry", record.vote_id)
                continue
            with self._lock:
                self._records.pop(record.vote_id, None)
                try:
                    self._save()
                except OSError:  # the vote is stored; a stale spool line only retries a stored vote later
                    log.exception("cannot rewrite the pending-vote spool %s", self.spool)
            done += 1
        return done

    def close(self) -> None:
        """Stop the retry thread (pending votes stay in the spool)."""
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _ensure_worker(self) -> None:
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._retry_loop, name="vote-retry", daemon=True)
                self._thread.start()

    def _retry_loop(self) -> None:
        while not self._stopped.is_set():
            self._wake.wait(self.retry_s)
            self._wake.clear()
            if self._stopped.is_set():
                return
            self.drain()
            with self._lock:
                if not self._records:
                    self._thread = None
                    return

    def _save(self) -> None:
        """Rewrite the spool atomically and durably (fsync of the file and of its folder); raises OSError."""
        if self.spool is None:
            return
        self.spool.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.spool.with_suffix(".tmp")
        with tmp.open("w", encoding="utf-8") as out:
            out.writelines(record.to_json() + "\n" for record in self._records.values())
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, self.spool)
        folder = os.open(self.spool.parent, os.O_RDONLY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)
