"""compare() returns as soon as both sides are done and handed over, not at a side's deadline."""

from __future__ import annotations

import threading
import time

from speechlm_demo.compare import Comparison, SideResult, compare
from speechlm_demo.engines.base import Engine, EngineError
from tests.test_compare import TURN


def cannot_load() -> Engine:
    """A side that is over at once (its load fails), long before its 600 s load deadline."""
    raise EngineError("no such model")


def test_compare_returns_once_both_sides_are_handed_over_even_if_on_result_takes_a_moment() -> None:
    """Both sides finish while compare() is waiting and are still in ``on_result`` when it wakes: it must not then
    wait for their deadline (here the 600 s load deadline: the join below would time out)."""
    both_in = threading.Barrier(2, timeout=10)
    heard: list[str] = []

    def on_result(side: str, result: SideResult) -> None:  # e.g. stores the result or hands it to the UI
        both_in.wait()  # each side is in on_result, its thread alive, after it said it was done
        time.sleep(0.1)
        heard.append(side)

    box: dict[str, Comparison] = {}
    worker = threading.Thread(target=lambda: box.update(result=compare(cannot_load, cannot_load, TURN, 16_000, on_result=on_result)), daemon=True)
    worker.start()
    worker.join(30)
    assert not worker.is_alive(), "compare() waited for the sides' deadline"
    result = box["result"]
    assert sorted(heard) == ["a", "b"]
    assert [result.a.status, result.b.status] == ["failed", "failed"] and "no such model" in result.a.message
