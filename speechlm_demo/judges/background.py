"""Judging voted replies off the hot path: the vote is stored first, the judges run later on one thread.

:meth:`JudgeWorker.leaks` is the blind arena's leak check: the names the reply texts give away, stored
with the vote itself (so a vote spooled while the store is down keeps its verdict). :meth:`JudgeWorker.on_vote`
is its vote hook. It writes the reply's judgement row with the identity-leak verdict on the reply text at
once, then queues the audio of the engine's own ``ok`` replies (a fallback's or a failed reply is marked
``skipped``: it is not the drawn engine's quality); the worker thread scores it and adds what the round-trip ASR heard to the
leak verdict. A full queue drops the scoring of a reply (logged), never the vote.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..env_settings import env_flag
from ..votes.store import StoreError, VoteRecord
from .identity import leak_label, leak_names, named
from .records import JudgementStore
from .scorer import Judges

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
JUDGES_ENV = "SPEECHLM_JUDGES"


@dataclass
class _Job:
    vote_id: str
    side: str
    audio: np.ndarray
    sample_rate: int
    text: str
    timeline: dict[str, Any]
    leak: list[str]


class JudgeWorker:
    """Scores voted replies on a daemon thread and stores the scores in the judgements table."""

    def __init__(self, records: JudgementStore, names: Callable[[], Iterable[str]], judges: Judges | None = None, *, size: int = QUEUE_SIZE, score: bool = True) -> None:
        self.records = records
        self.score = score
        self.names = names
        self.judges = judges or Judges()
        self._jobs: queue.Queue[_Job | None] = queue.Queue(maxsize=size)
        self._thread = threading.Thread(target=self._run, name="judges", daemon=True)
        self._thread.start()

    def leaks(self, record: VoteRecord) -> list[str]:
        """The names the vote's reply texts give away (the blind arena keeps them with the vote)."""
        names = list(self.names())
        return leak_names(*named(record.reply_text_a, names), *named(record.reply_text_b, names))

    def on_vote(self, record: VoteRecord, replies: Any) -> list[str]:
        """Mark the round's leak now and queue both replies; returns the names the replies gave away."""
        names = list(self.names())
        leaked: set[str] = set()
        for side, engine, text in (("a", record.engine_a, record.reply_text_a), ("b", record.engine_b, record.reply_text_b)):
            leak = named(text, names)
            leaked.update(leak)
            try:
                self.records.open(record.vote_id, side, engine, leak_label(leak))
            except StoreError as exc:
                log.error("judgement row of vote %s not written: %s", record.vote_id, exc)
                continue
            result = replies.sides[side] if replies is not None else None
            status = record.status_a if side == "a" else record.status_b
            if status != "ok":  # a fallback's or a failed reply: not the drawn engine's quality
                self._skip(record.vote_id, side, f"not judged: the reply's status is {status}")
                continue
            if not self.score or result is None or not len(result.audio):
                continue
            job = _Job(record.vote_id, side, np.asarray(result.audio), int(result.sample_rate), text, dict(result.timeline), leak)
            try:
                self._jobs.put_nowait(job)
            except queue.Full:
                log.warning("judge queue full: reply %s/%s not scored", record.vote_id, side)
        return leak_names(*leaked)

    def _skip(self, vote_id: str, side: str, why: str) -> None:
        try:
            self.records.finish(vote_id, side, {"status": "skipped", "error": why})
        except StoreError as exc:
            log.error("judgement row of vote %s/%s not marked skipped: %s", vote_id, side, exc)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                values = self.judges.score(job.audio, job.sample_rate, job.text, job.timeline)
                heard = named(values.get("asr_text") or "", list(self.names()))
                values["identity_leak"] = leak_label(sorted(set(job.leak) | set(heard), key=str.lower))
                values["status"] = "failed" if values["error"] and values.get("dnsmos_ovrl") is None else "done"
                self.records.finish(job.vote_id, job.side, values)
            except Exception:
                log.exception("judging reply %s/%s failed", job.vote_id, job.side)
            finally:
                self._jobs.task_done()

    def join(self) -> None:
        """Wait until every queued reply is scored (tests, shutdown)."""
        self._jobs.join()

    def close(self) -> None:
        """Stop the worker after the replies already queued."""
        self._jobs.put(None)
        self._thread.join(timeout=60)


def start_worker(store: Any, entries: Callable[[], Iterable[Any]]) -> JudgeWorker:
    """The app's worker over ``store`` with the identity names of the catalogue ``entries``; scoring is off
    when ``$SPEECHLM_JUDGES`` is off (``0``, ``false``, ``no``, ``off``) (the leak check still runs). The worker has judge models of its own (loaded
    on its thread at its first reply), so nothing else that judges (the Compare tab) waits on it, nor it on them."""
    from .identity import catalogue_names

    scoring = judges_enabled()
    return JudgeWorker(JudgementStore(store), lambda: catalogue_names(entries()), Judges(dnsmos=scoring, roundtrip=scoring), score=scoring)


def judges_enabled() -> bool:
    """Whether the app scores replies (``$SPEECHLM_JUDGES``, an on/off flag, default on)."""
    return env_flag(JUDGES_ENV, True)
