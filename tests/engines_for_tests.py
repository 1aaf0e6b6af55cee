"""Small half-duplex engines with scripted behaviour, to test the turn layer against real threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from speechlm_demo.catalog import Catalog, EngineEntry
from speechlm_demo.engines.base import AudioOut, Event, HalfDuplexEngine, Mark, SessionOptions, TextOut, UserTurn
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.hardware import HostInfo


def entry(engine_id: str = "scripted", **defaults: Any) -> EngineEntry:
    """A catalogue entry for a test engine (16 kHz in and out)."""
    return EngineEntry.model_validate(
        {
            "id": engine_id,
            "label": engine_id.title(),
            "family": "diagnostic",
            "duplex": "half",
            "class": "tests.engines_for_tests:ScriptedEngine",
            "accelerators": ["cpu"],
            "licence": "MIT",
            "defaults": defaults,
        }
    )


def tone(seconds: float, rate: int = 16_000, level: float = 0.3, freq: float = 220.0) -> np.ndarray:
    """A loud enough sine to count as speech for the energy VAD."""
    t = np.arange(int(seconds * rate)) / rate
    return (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float, rate: int = 16_000) -> np.ndarray:
    """Digital silence."""
    return np.zeros(int(seconds * rate), np.float32)


class ScriptedEngine(HalfDuplexEngine):
    """Behaviour chosen per test: answer, crash, hang or speak slowly."""

    behaviour = "answer"
    chunk_s = 0.1
    chunks = 5
    delay_s = 0.0

    def __init__(self, entry: EngineEntry, device: str = "cpu", behaviour: str = "answer") -> None:
        super().__init__(entry, device)
        self.behaviour = behaviour
        self.release = threading.Event()
        self.turns_seen: list[int] = []

    def respond(self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions) -> Iterator[Event]:
        self.turns_seen.append(turn.turn_id)
        if self.behaviour == "crash":
            raise RuntimeError("model exploded")
        if self.behaviour == "hang":
            self.release.wait(30)
            return
        yield Mark("asr_final")
        yield TextOut(f"turn {turn.turn_id}", role="agent")
        for _ in range(self.chunks):
            if turn.cancel.is_set():
                return
            time.sleep(self.delay_s)
            yield AudioOut(tone(self.chunk_s, freq=440.0), 16_000)
        history.append({"role": "assistant", "content": f"turn {turn.turn_id}"})


class Recorder:
    """Collects emitted events (thread-safe) and waits for turn ends."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    def of(self, kind: type) -> list:
        with self._cond:
            return [e for e in self.events if isinstance(e, kind)]

    def wait_for(self, kind: type, count: int = 1, timeout: float = 10.0) -> list:
        deadline = time.monotonic() + timeout
        with self._cond:
            while len([e for e in self.events if isinstance(e, kind)]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"expected {count} {kind.__name__}, got {self.events}")
                self._cond.wait(left)
        return self.of(kind)


class CrashingEngine(ScriptedEngine):
    """Fails every turn."""

    def __init__(self, entry: EngineEntry, device: str = "cpu") -> None:
        super().__init__(entry, device, behaviour="crash")


class SlowEngine(ScriptedEngine):
    """Answers, but takes a while over every audio chunk."""

    delay_s = 0.25


def registry_of(*entries: EngineEntry) -> EngineRegistry:
    """A CPU registry over these catalogue entries (the first is the default); classes from ``tests`` allowed."""
    catalog = Catalog(default_engine=entries[0].id, engine_packages=["tests"], engines=list(entries))
    return EngineRegistry(catalog, HostInfo(accelerator="cpu"))


def engine_entry(engine_id: str, label: str, engine_class: str = "ScriptedEngine", weight: float = 1.0) -> EngineEntry:
    """An entry for one of this module's engines, with its own label and blind A/B weight."""
    return entry(engine_id).model_copy(update={"label": label, "engine_class": f"tests.engines_for_tests:{engine_class}", "weight": weight})
