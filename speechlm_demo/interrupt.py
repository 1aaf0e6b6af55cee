"""Ctrl-C (SIGINT) in ``app.py`` and ``python -m speechlm_demo``: one log line, exit status 130, no traceback,
no native abort.

Python's own answer to Ctrl-C is a KeyboardInterrupt raised wherever the main thread is: in the middle of
importing Gradio or torch it prints a traceback, and the interpreter then shuts down while an engine may be
loading in a background thread (llama.cpp, CTranslate2). Native threads still running while the C++ runtime
tears down can abort the process ("terminate called without an active exception", exit status 134), and no
Python code can stop them. So each entry point calls :func:`exit_on_interrupt` first: Ctrl-C then logs one
line and ends the process with :func:`os._exit`, after flushing logging and the standard streams (the line is
written straight to file descriptor 2, in the logging format). That skips
the interpreter's shutdown (atexit callbacks, among them the wait for engines still loading, and C++ static
destructors): the only reliable way out while a native loader runs.

While the server runs, uvicorn takes Ctrl-C over: it shuts the server down gracefully, then hands the signal
back here. A command with clean-ups of its own runs in :func:`unwind_on_interrupt`. Ctrl-C in the
interpreter's own start-up, before the entry point's first line runs (tens of milliseconds), is still
Python's KeyboardInterrupt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from types import FrameType
from typing import NoReturn

log = logging.getLogger(__name__)

EXIT_STATUS = 130  # 128 + SIGINT, what a shell reports for a process that Ctrl-C ended
MESSAGE = "interrupted (Ctrl-C); exiting"
CLEANING_UP = "cleaning up after Ctrl-C; press it again to exit at once"
_saved_fds: dict[int, int] = {}  # copies of file descriptors 1 and 2 as they were at the first install


def exit_on_interrupt() -> None:
    """From now on Ctrl-C ends the process at once: one log line, flushed, exit status 130. Main thread only
    (elsewhere nothing changes): signal handlers belong to it."""
    if threading.current_thread() is not threading.main_thread():
        return
    for fd in (1, 2):
        if fd not in _saved_fds:
            with contextlib.suppress(OSError):  # a closed descriptor has nothing to restore
                _saved_fds[fd] = os.dup(fd)
    signal.signal(signal.SIGINT, _on_interrupt)


def _on_interrupt(signum: int, frame: FrameType | None) -> None:
    _exit_interrupted()


def _line(message: str) -> bytes:
    """A log line, formatted as the root logger's first handler formats (plain without one)."""
    record = log.makeRecord(log.name, logging.WARNING, __file__, 0, message, None, None)
    handlers = logging.getLogger().handlers
    try:
        text = handlers[0].format(record) if handlers else message
    except Exception:  # noqa: BLE001 - a formatter that fails: the plain message still says it
        text = message
    return text.encode(errors="replace") + b"\n"


def _exit_interrupted() -> NoReturn:
    """Say that Ctrl-C ended the process, flush, and exit with status 130 without the interpreter's shutdown.
    Whatever fails on the way (a stream the main thread was writing to when the signal came raises a reentrant
    call, a logging handler that raises) the process still exits, and says it once."""
    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C while exiting changes nothing
        for fd, saved in _saved_fds.items():  # llama.cpp's loader points 1 and 2 at /dev/null while it runs
            with contextlib.suppress(OSError):
                os.dup2(saved, fd)
        for target in [*logging.getLogger().handlers, sys.stdout, sys.stderr, sys.__stdout__, sys.__stderr__]:
            with contextlib.suppress(Exception):  # None, closed, or busy in the very write the signal broke into
                target.flush()
        os.write(2, _line(MESSAGE))  # not through a stream: its buffer may be the one the main thread was writing
    finally:
        os._exit(EXIT_STATUS)


@contextlib.contextmanager
def unwind_on_interrupt() -> Iterator[None]:
    """Inside, Ctrl-C raises KeyboardInterrupt, so ``finally`` blocks run (a command's clean-up: a staging
    folder removed), then exits with status 130 as above. A second Ctrl-C does not break the clean-up off (it
    says that a third exits at once); the third does, also where the first one's KeyboardInterrupt was
    swallowed (a finalizer, a library). Only where :func:`exit_on_interrupt` is in force (an entry point); for
    other callers (a test calling the command line) nothing changes."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGINT) is not _on_interrupt:
        yield
        return
    presses = 0

    def on_interrupt(signum: int, frame: FrameType | None) -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            raise KeyboardInterrupt
        if presses > 2:
            _exit_interrupted()
        with contextlib.suppress(OSError):
            os.write(2, _line(CLEANING_UP))

    try:
        signal.signal(signal.SIGINT, on_interrupt)
        yield
    except KeyboardInterrupt:
        _exit_interrupted()
    finally:
        signal.signal(signal.SIGINT, _on_interrupt)
