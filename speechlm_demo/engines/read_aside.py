"""Read a server's reply in a thread of its own, so that a barge-in never waits for a silent server.

A blocking HTTP read cannot be interrupted: a reply whose server says nothing (busy, hung) would hold the
reply's worker until a timeout, and the next reply behind it (see
:mod:`speechlm_demo.turntaking.reply_runner`). :func:`read_aside` reads in a daemon thread and hands the
items over a small queue, so the caller stops within :data:`CANCEL_POLL_S` of its cancel; the reader closes its
connection as soon as its read returns. Used by the OpenAI-compatible client (:mod:`.openai_http`) and the
research-server clients (:mod:`.server_client`).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Any, TypeVar

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
