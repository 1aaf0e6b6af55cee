"""A model is loaded once per process and per arguments, however many threads ask for it at once; a failed
load is not remembered."""

from __future__ import annotations

import threading
import time
from collections import Counter

import pytest

from speechlm_demo.load_once import once_per_process


def ask_together(get, keys: list[tuple]) -> list[object]:
    """Call ``get(*key)`` for every key, each from its own thread, all released at the same instant."""
    start = threading.Barrier(len(keys))
    got: list[object] = [None] * len(keys)

    def ask(index: int, key: tuple) -> None:
        start.wait()
        got[index] = get(*key)

    threads = [threading.Thread(target=ask, args=(i, key)) for i, key in enumerate(keys)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert not any(thread.is_alive() for thread in threads)
    return got


def test_threads_asking_at_once_share_one_load() -> None:
    loads: list[int] = []

    def load() -> object:
        loads.append(1)
        time.sleep(0.1)  # a slow load: the other threads ask while it is still loading
        return object()

    get = once_per_process(load)
    got = ask_together(get, [()] * 6)
    assert len(loads) == 1 and all(model is got[0] for model in got) and get() is got[0]


def test_each_set_of_arguments_is_loaded_once_and_kept_apart() -> None:
    loads: Counter[str] = Counter()
    lock = threading.Lock()

    def load(path: str) -> dict[str, str]:
        with lock:
            loads[path] += 1
        time.sleep(0.05)
        return {"path": path}

    get = once_per_process(load)
    got = ask_together(get, [("a.onnx",), ("b.onnx",)] * 4)
    assert loads == {"a.onnx": 1, "b.onnx": 1}
    assert all(model is got[0] for model in got[0::2]) and all(model is got[1] for model in got[1::2])
    assert got[0] == {"path": "a.onnx"} and got[1] == {"path": "b.onnx"}
    assert get.loaded() == {("a.onnx",): got[0], ("b.onnx",): got[1]}


def test_a_slow_load_does_not_hold_up_another_key() -> None:
    started, release = threading.Event(), threading.Event()

    def load(name: str) -> str:
        if name == "slow":
            started.set()
            release.wait(10)
        return name

    get = once_per_process(load)
    slow = threading.Thread(target=get, args=("slow",))
    slow.start()
    try:
        assert started.wait(10)
        assert get("fast") == "fast"
        assert slow.is_alive()  # "fast" did not wait for "slow" to finish loading
    finally:
        release.set()
        slow.join(10)
    assert get.loaded() == {("slow",): "slow", ("fast",): "fast"}


def test_a_failed_load_is_not_remembered() -> None:
    attempts: list[int] = []

    def load() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("model files missing")
        return "model"

    get = once_per_process(load)
    with pytest.raises(RuntimeError, match="missing"):
        get()
    assert get.loaded() == {}
    assert get() == "model" and get() == "model" and len(attempts) == 2


def test_a_caller_waiting_on_a_load_that_fails_loads_again_itself() -> None:
    attempts: list[str] = []
    first_started = threading.Event()

    def load() -> str:
        attempts.append(threading.current_thread().name)
        if len(attempts) == 1:
            first_started.set()
            time.sleep(0.1)  # the second caller is waiting meanwhile
            raise OSError("disk hiccup")
        return "model"

    get = once_per_process(load)
    errors: list[BaseException] = []

    def first() -> None:
        try:
            get()
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=first, name="first")
    thread.start()
    first_started.wait(10)
    assert get() == "model"  # waited for the failing load, then loaded
    thread.join(10)
    assert [str(e) for e in errors] == ["disk hiccup"] and attempts == ["first", "MainThread"]
