"""TCP servers that fail before any protocol starts: one that accepts no connection, one that says nothing."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def unaccepting_port() -> Iterator[int]:
    """A port whose listen backlog is full, so a new connection is neither accepted nor refused (a connect timeout).

    Linux queues ``backlog + 1`` handshaken connections for a listener that never calls ``accept``; the two
    connections opened here fill the queue and the kernel drops every later SYN.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(2):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


@contextmanager
def silent_listener() -> Iterator[int]:
    """A port that accepts connections (the kernel completes the handshake) but never sends a byte."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()
