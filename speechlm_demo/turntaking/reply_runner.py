"""One reply worker at a time per session: the newest reply waits, superseded ones never start.

A half-duplex session starts a (speculative) reply at every short pause and drops it when the user goes
on. If every reply got its own thread at once, a long monologue with short gaps would pile up workers
that all transcribe and prompt the LLM while they wait to notice their cancellation (issue 13: 109
threads, both cores busy 40 s after the speech). Here a new reply runs only once the previous worker has
stopped; meanwhile it waits in a single slot, and a newer reply replaces it there (the replaced one was
cancelled by the session and never runs). A worker that ignores its cancellation for ``grace_s`` is
left behind (logged) so that a hung engine cannot silence the session for good.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

log = logging.getLogger(__name__)

CANCEL_GRACE_S = 5.0  # how long the next reply waits for a cancelled worker to stop, at most


class Worker(Protocol):
    """What the runner needs of a reply."""

    @property
    def cancelled(self) -> bool:
        """Dropped or interrupted: it must not start, and should stop if running."""
        ...

    def start(self) -> None:
        """Start the worker thread; it calls :meth:`ReplyRunner.done` when it ends."""
        ...


class ReplyRunner:
    """Runs a session's replies one at a time (thread-safe)."""

    def __init__(self, grace_s: float = CANCEL_GRACE_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.grace_s = grace_s
        self.clock = clock
        self.abandoned = 0  # workers left running past their grace
        self._running: Worker | None = None
        self._waiting: Worker | None = None
        self._blocked_since: float | None = None  # when a reply first had to wait for the running worker
        self._timer: threading.Timer | None = None
        self._lock = threading.Lock()
        self._closed = False

    @property
    def running(self) -> Worker | None:
        """The reply whose worker runs now, if any."""
        return self._running

    def submit(self, reply: Worker) -> None:
        """Run ``reply`` now if no worker runs, else as soon as the running one stops (or is left behind)."""
        with self._lock:
            if self._closed:
                return
            self._waiting = reply
            if not self._start_next():
                if self._blocked_since is None:
                    self._blocked_since = self.clock()
                self._arm()

    def done(self, reply: Worker) -> None:
        """Called by a worker as its thread ends."""
        with self._lock:
            if self._running is reply:
                self._running, self._blocked_since = None, None
            self._start_next()

    def close(self) -> None:
        """Start nothing more."""
        with self._lock:
            self._closed = True
            self._waiting = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def _arm(self) -> None:
        """Make sure a timer checks the waiting reply when the running worker's grace is over (lock held)."""
        if self._timer is None and self._blocked_since is not None:
            delay = max(0.0, self._blocked_since + self.grace_s - self.clock()) + 0.01
            self._timer = threading.Timer(delay, self._grace_over)
            self._timer.daemon = True
            self._timer.start()

    def _grace_over(self) -> None:
        with self._lock:
            self._timer = None
            if not self._start_next():
                self._arm()

    def _start_next(self) -> bool:
        """Start the waiting reply if it may run now (lock held); True when nothing is left waiting."""
        waiting = self._waiting
        if waiting is None or self._closed:
            return True
        if waiting.cancelled:
            self._waiting = None
            return True
        if self._running is not None:
            blocked = self._blocked_since
            if blocked is None or self.clock() - blocked < self.grace_s:
                return False
            self.abandoned += 1
            log.warning("a reply worker ignored its cancellation for %.1f s; starting the next reply anyway", self.grace_s)
        self._waiting, self._running, self._blocked_since = None, waiting, None
        waiting.start()
        return True
