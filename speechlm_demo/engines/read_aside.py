"""Read a server's reply in a thread of its own, so that a barge-in never waits for a silent server.

A blocking HTTP read cannot be interrupted: a reply whose server says nothing (busy, hung) would hold the
reply's worker until a timeout, and the next reply behind it (see
:mod:`speechlm_demo.turntaking.reply_runner`). :func:`read_aside` reads in a daemon thread and hands the
items over a small queue, so the caller stops within :data:`CANCEL_POLL_S` of its cancel; the reader closes its
connection as soon as its read returns. Used by the OpenAI-compatible client (:mod:`.openai_http`) and the
research-server clients (:mod:`.server_client`). :class:`Aside` does the same for one call (a probe, a
connection being opened): wait for it with a cancel, or abandon it with a clean-up for what it returns late.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Generator, Iterable
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

CANCEL_POLL_S = 0.05  # how often the caller looks at its cancel while the server works
ASIDE_ITEMS = 64  # items read ahead of a slow caller


def read_aside(
    name: str, produce: Callable[[threading.Event], Iterable[T]], cancel: threading.Event
) -> Generator[T, None, None]:
    """The items of ``produce(stop)``, run in a thread of its own; its error is raised here.

    Returns within :data:`CANCEL_POLL_S` of ``cancel`` even while ``produce`` waits on a silent server, and
    sets ``stop`` when done or abandoned, for ``produce`` to close its connection as soon as its read returns.
    At most :data:`ASIDE_ITEMS` items wait for the caller (the reader keeps the server's pace, not more).
    """
    if cancel.is_set():
        return  # nothing is sent for a reply already over
    items: queue.Queue[tuple[str, Any]] = queue.Queue(ASIDE_ITEMS)
    stop = threading.Event()

    def put(kind: str, value: Any) -> bool:
        while not stop.is_set():
            try:
                items.put((kind, value), timeout=CANCEL_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            for item in produce(stop):
                if not put("item", item):
                    return
            put("end", None)
        except BaseException as exc:  # noqa: BLE001 - handed to the reading caller
            if not put("error", exc):
                log.debug("%s failed after its caller left: %s", name, exc)

    threading.Thread(target=run, name=name, daemon=True).start()
    try:
        while not cancel.is_set():
            try:
                kind, value = items.get(timeout=CANCEL_POLL_S)
            except queue.Empty:
                continue
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()


class Aside(Generic[T]):
    """``call()`` run once in a daemon thread of its own; its caller waits for it within :data:`CANCEL_POLL_S` of
    a cancel, takes its value (its error raised), or abandons it."""

    def __init__(self, name: str, call: Callable[[], T]) -> None:
        self.done = threading.Event()
        self.finished_at = 0.0  # time.monotonic() when it ended
        self._value: T | None = None
        self._error: BaseException | None = None
        self._lock = threading.Lock()  # the value goes to the caller, or to the clean-up of an abandoned call
        self._cleanup: Callable[[T], None] | None = None
        threading.Thread(target=self._run, args=(name, call), name=name, daemon=True).start()

    def _run(self, name: str, call: Callable[[], T]) -> None:
        try:
            self._value = call()
        except BaseException as exc:  # noqa: BLE001 - raised in the caller by result()
            self._error = exc
        with self._lock:
            self.finished_at = time.monotonic()
            self.done.set()
            cleanup = self._cleanup
        if cleanup is not None:
            self._clean(name, cleanup)

    def wait(self, cancel: threading.Event, timeout: float = float("inf")) -> bool:
        """True once the call has ended; False if ``cancel`` was set or ``timeout`` seconds passed first."""
        deadline = time.monotonic() + timeout
        while not self.done.wait(CANCEL_POLL_S):
            if cancel.is_set() or time.monotonic() >= deadline:
                return False
        return True

    def result(self) -> T:
        """The call's value; its error raised here (call only after :meth:`wait` said True)."""
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]

    def abandon(self, cleanup: Callable[[T], None]) -> None:
        """Nobody will take the value: ``cleanup(value)`` now if it is in, else when it comes (not on an error)."""
        with self._lock:
            if not self.done.is_set():
                self._cleanup = cleanup
                return
        self._clean("an abandoned call", cleanup)

    def _clean(self, name: str, cleanup: Callable[[T], None]) -> None:
        if self._error is not None:
            log.debug("%s failed after its caller left: %s", name, self._error)
        else:
            cleanup(self._value)  # type: ignore[arg-type]
