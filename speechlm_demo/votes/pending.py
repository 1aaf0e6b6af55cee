"""Votes the store could not take yet: kept (in memory and in a spool file) and retried in the background.

A vote is never dropped silently: it is either stored, kept here (on disk, and retried until stored), or
refused with :class:`~speechlm_demo.votes.store.StoreUnavailable` so the user is told. Kept means written
to the spool, a JSON-lines file rewritten atomically and fsynced, so pending votes survive a restart (a new
:class:`PendingVotes` on the same file picks them up); without a spool, or when the spool cannot be
written (a read-only or vanished data folder), the vote is refused rather than held in memory only.
Retries are idempotent: a vote that did reach the database is not stored twice (the store recognises its
``vote_id``), and a retry waits only briefly for a locked database, so it never holds up the users' votes.

The spool is per host and process (:func:`host_spool`): its owner rewrites it whole, so neither replicas
sharing a data folder nor two app processes on one host may share one. A restarted app usually gets a new
process id (a restarted container a new host name; one whose app is pid 1 again finds its own spool), so
with ``adopt=True`` a new
:class:`PendingVotes` also takes over the other ``pending_votes-*.jsonl`` files of its folder, at its start
and then at every retry that leaves none of its own votes waiting (a replica that went away after this one
started). Taking one over is safe even if its host still runs: the file is first renamed (atomic: one taker
wins), its votes are written into this host's spool, and only then is the renamed file deleted; a live owner
still holds its votes in memory and writes its spool again at its next change, so a vote may be tried by
both, and is stored once. A spool is never taken half-written: its owner writes a ``.tmp`` file (not matched)
and renames it over the spool. While votes of its own wait (the store is down), a replica takes over nothing,
so two live replicas do not keep taking each other's spools.

A spool line that cannot be read (a torn write, a hand edit) is set aside, never deleted: appended to the
file's ``.bad`` companion (``pending_votes-HOST-PID.jsonl.bad``) with an error naming the file and the line; the
other votes of the file are kept.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from pathlib import Path

from .failure_log import RepeatedFailures
from .store import DuplicateVote, StoreUnavailable, VoteRecord, VoteStore

log = logging.getLogger(__name__)

RETRY_WAIT_S = 0.25  # how long a background retry waits for a locked database (a user's vote waits longer)
SPOOL_PREFIX = "pending_votes-"
BAD_SUFFIX = ".bad"
CLAIM_MARK = ".claimed-"



def _claimed_from(path: Path) -> Path:
    """The spool a (possibly claimed) spool file was: ``pending_votes-h.jsonl.claimed-x`` -> ``pending_votes-h.jsonl``."""
    return path.with_name(path.name.split(CLAIM_MARK)[0])

def host_spool(folder: Path) -> Path:
    """This host's and process's spool file in ``folder``."""
    return folder / f"{SPOOL_PREFIX}{socket.gethostname()}-{os.getpid()}.jsonl"


def read_spool(path: Path) -> tuple[list[VoteRecord], int]:
    """The votes of a spool file (or of a claim on one) and the number of unreadable lines, which are appended
    to the spool's ``.bad`` file (fsynced) and logged with their line numbers. Raises OSError when the file
    cannot be read, or its bad lines cannot be set aside (the file must then stay as it is)."""
    original = _claimed_from(path)
    records, bad = [], []
    for number, raw in enumerate(path.read_bytes().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            document = json.loads(raw.decode("utf-8"))
            if not isinstance(document, dict):
                raise TypeError(f"a vote is a JSON object, not {type(document).__name__}")
            records.append(VoteRecord.from_row(document))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            bad.append((number, raw, exc))
    if bad:
        aside = original.with_name(original.name + BAD_SUFFIX)
        with aside.open("ab") as out:
            out.writelines(raw + b"\n" for _, raw, _ in bad)
            out.flush()
            os.fsync(out.fileno())
        for number, _, exc in bad:
            log.error("pending-vote spool %s, line %d, is not a readable vote (%s); set aside in %s", original, number, exc, aside)
    return records, len(bad)


class PendingVotes:
    """A bounded retry queue in front of a :class:`VoteStore`.

    ``adopt``: also take over the other hosts' spools in the spool's folder (see the module's text).
    """

    def __init__(
        self,
        store: VoteStore,
        spool: Path | None = None,
        *,
        limit: int = 10_000,
        retry_s: float = 5.0,
        retry_wait_s: float = RETRY_WAIT_S,
        adopt: bool = False,
    ) -> None:
        self.store = store
        self.spool = spool
        self.limit = limit
        self.retry_s = retry_s
        self.retry_wait_s = retry_wait_s
        self.adopt = adopt and spool is not None
        self._records: dict[str, VoteRecord] = {}
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None
        self._takeover_failures = RepeatedFailures(log)  # a takeover retried every retry_s logs a failure once
        if spool is not None:
            self._load()

    def _load(self) -> None:
        """Read this host's spool (and with ``adopt`` take over the others'); start retrying if any vote waits
        (with ``adopt``: always, to take over the spools that turn up later)."""
        assert self.spool is not None
        if self.spool.exists():
            try:
                records, bad = read_spool(self.spool)
            except OSError:  # never write over a spool that could not be read: keep no spool this run
                log.exception("cannot read the pending-vote spool %s; it is left as it is, and votes are not spooled", self.spool)
                self.spool, self.adopt = None, False
                return
            self._records.update((record.vote_id, record) for record in records)
            if bad:
                self._save_or_log()
        if self.adopt:
            self._take_over()
            self._takeover_failures.round_over()
        if self._records:
            log.warning("%d vote(s) from the spool %s await storing", len(self._records), self.spool)
        if self._records or self.adopt:
            self._ensure_worker()

    def _save_or_log(self) -> bool:
        """Rewrite this host's spool; False (logged) when it cannot be written."""
        try:
            self._save()
        except OSError:
            log.exception("cannot write the pending-vote spool %s", self.spool)
            return False
        return True

    def _take_over(self) -> int:
        """Take over the other hosts' spools: claim (rename), read, save into this host's spool, then delete the
        claims (kept on disk when this host's spool cannot be written; logged as taken over only once it is).
        Returns how many votes were read."""
        taken: list[tuple[Path, int]] = []  # each claim read, and how many votes it held
        count = 0
        for claim in self._claim_others():
            what = f"reading the pending-vote spool {_claimed_from(claim)}"
            try:
                records, _ = read_spool(claim)
            except FileNotFoundError:  # another process claimed it in the meantime: its votes are there
                continue
            except OSError as exc:
                self._takeover_failures.failed(what, exc, "cannot read the pending-vote spool %s; it stays for a later retry", claim)
                continue
            self._takeover_failures.succeeded(what)
            count += len(records)
            with self._lock:
                self._records.update((record.vote_id, record) for record in records)
            taken.append((claim, len(records)))
        if not taken:
            return count
        with self._lock:
            what = f"writing the pending-vote spool {self.spool}"
            try:
                self._save()  # this host's spool now holds every vote taken over
            except OSError as exc:
                self._takeover_failures.failed(
                    what,
                    exc,
                    "cannot write the pending-vote spool %s; the spools read stay on disk for a later retry: %s",
                    self.spool,
                    ", ".join(str(claim) for claim, _ in taken),
                )
                return count
        self._takeover_failures.succeeded(what)
        for claim, held in taken:
            if held:
                log.warning("took over %d pending vote(s) of another host from %s", held, _claimed_from(claim))
            claim.unlink(missing_ok=True)
        return count

    def _claim_others(self) -> list[Path]:
        """Rename the other hosts' spools (and claims left by a taker that died) to claims of this process."""
        assert self.spool is not None
        mark = f"{CLAIM_MARK}{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        found = [p for p in self.spool.parent.glob(f"{SPOOL_PREFIX}*.jsonl") if p.name != self.spool.name]
        found += self.spool.parent.glob(f"{SPOOL_PREFIX}*.jsonl{CLAIM_MARK}*")
        claims = []
        for number, path in enumerate(sorted(found)):
            if path.name.endswith(BAD_SUFFIX):
                continue
            claim = path.with_name(f"{_claimed_from(path).name}{mark}-{number}")  # a spool and its stale claims: one name each
            what = f"taking over the pending-vote spool {_claimed_from(path)}"
            try:
                os.rename(path, claim)
            except FileNotFoundError:
                continue
            except OSError as exc:
                self._takeover_failures.failed(what, exc, "cannot take over the pending-vote spool %s; its votes wait there", path)
                continue
            self._takeover_failures.succeeded(what)
            claims.append(claim)
        return claims

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
                self.store.add(record, wait_s=self.retry_wait_s)
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
            if self.adopt and not len(self):
                self._retry_take_over()
            with self._lock:
                if not self._records and not self.adopt:
                    self._thread = None
                    return

    def _retry_take_over(self) -> None:
        """The retry's takeover of other hosts' spools (and the storing of their votes); a failure that repeats at
        every retry is logged once, and its end too (see :class:`~.failure_log.RepeatedFailures`)."""
        what = "taking over other hosts' pending-vote spools"
        try:
            if self._take_over():
                self.drain()
        except Exception as exc:  # noqa: BLE001 - the retry thread must live on: the next retry tries again
            self._takeover_failures.failed(what, exc, "taking over other hosts' pending-vote spools failed")
            self._takeover_failures.round_over(whole=False)  # what it did not reach may still be there
            return
        self._takeover_failures.succeeded(what)
        self._takeover_failures.round_over()

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
