"""``read_aside``: a server's reply read in a thread of its own, at the server's pace, given up at a cancel;
``Aside``: one call run the same way."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.read_aside import ASIDE_ITEMS, Aside, read_aside


def test_it_reads_ahead_only_so_far_and_ends_the_reader_when_left() -> None:
    produced: list[int] = []
    ended = threading.Event()

    def produce(stop: threading.Event) -> Iterator[int]:
        try:
            for index in range(10 * ASIDE_ITEMS):
                produced.append(index)
                yield index
        finally:
            ended.set()  # a real reader closes its connection here

    items = read_aside("test", produce, threading.Event())
    assert next(items) == 0
    time.sleep(0.3)  # a slow caller: the reader waits for it
    assert ASIDE_ITEMS <= len(produced) <= ASIDE_ITEMS + 2
    items.close()
    assert ended.wait(2)
    assert len(produced) < 10 * ASIDE_ITEMS


def test_the_readers_error_is_raised_to_the_caller() -> None:
    def failing(stop: threading.Event) -> Iterator[int]:
        yield 1
        raise EngineError("the server broke off")

    items = read_aside("test", failing, threading.Event())
    assert next(items) == 1
    with pytest.raises(EngineError, match="broke off"):
        next(items)


def test_nothing_is_asked_for_a_reply_already_cancelled() -> None:
    asked: list[int] = []

    def produce(stop: threading.Event) -> Iterator[int]:
        asked.append(1)
        yield 1

    cancel = threading.Event()
    cancel.set()
    assert list(read_aside("test", produce, cancel)) == []
    time.sleep(0.1)
    assert asked == []


def test_one_call_aside_gives_its_value_or_error_and_an_abandoned_value_is_cleaned_up() -> None:
    never = threading.Event()
    quick = Aside("quick", lambda: 7)
    assert quick.wait(never) and quick.result() == 7
    failing = Aside("failing", lambda: 1 / 0)
    assert failing.wait(never)
    with pytest.raises(ZeroDivisionError):
        failing.result()

    cancel, cleaned = threading.Event(), []
    slow = Aside("slow", lambda: (time.sleep(0.4), "connection")[1])
    threading.Timer(0.1, cancel.set).start()
    started = time.monotonic()
    assert not slow.wait(cancel) and time.monotonic() - started < 0.3
    slow.abandon(cleaned.append)
    assert cleaned == [] and slow.done.wait(2)
    time.sleep(0.05)
    assert cleaned == ["connection"]  # closed when it came, by the thread that opened it
    slow.abandon(cleaned.append)  # already in: cleaned up at once
    assert cleaned == ["connection", "connection"]
    assert not Aside("slow", lambda: time.sleep(1)).wait(never, timeout=0.1)
