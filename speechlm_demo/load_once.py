"""Load a model once per process and share it (standard library only).

``once_per_process(load)`` is a callable that runs ``load(*args)`` the first time it is called with those
arguments and returns what that made to every later caller with the same arguments. Two threads asking for
the same arguments at once never load twice: the second waits for the first. Different arguments load
independently (one slow load does not hold up another). A load that raises is not remembered: that caller
gets the error and the next caller tries again.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class OncePerProcess(Generic[T]):
    """What ``load`` made, per tuple of (hashable, positional) arguments; see the module's docstring."""

    def __init__(self, load: Callable[..., T]) -> None:
        self._load = load
        self._made: dict[tuple[Hashable, ...], T] = {}
        self._locks: dict[tuple[Hashable, ...], threading.Lock] = {}
        self._guard = threading.Lock()  # guards the two dicts; never held while loading

    def __call__(self, *args: Hashable) -> T:
        with self._guard:
            if args in self._made:
                return self._made[args]
            lock = self._locks.setdefault(args, threading.Lock())
        with lock:  # one loader per key; the others wait here, then find what it made
            with self._guard:
                if args in self._made:
                    return self._made[args]
            made = self._load(*args)
            with self._guard:
                self._made[args] = made
            return made

    def loaded(self) -> dict[tuple[Hashable, ...], T]:
        """What has been loaded so far, by arguments."""
        with self._guard:
            return dict(self._made)


def once_per_process(load: Callable[..., T]) -> OncePerProcess[T]:
    """``load`` run at most once per process for each set of arguments (a failed load is not remembered)."""
    return OncePerProcess(load)
