"""Small half-duplex engines with scripted behaviour, to test the turn layer against real threads."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from speechlm_demo.catalog import Catalog, EngineEntry
from speechlm_demo.engines.base import (
    AudioOut,
    Engine,
    EngineError,
    Event,
    Mark,
    Progress,
    SessionOptions,
    TextOut,
    TurnEnd,
    UserTurn,
)
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.hardware import HostInfo
from speechlm_demo.measure.observer import TurnObserver
from speechlm_demo.measure.record import TurnRecord
from speechlm_demo.turntaking.half_duplex import HalfDuplexEngine, HalfDuplexSettings


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


class WordsSettings(HalfDuplexSettings):
    """Settings of a test engine that reports the user's words itself, as the cascade does."""

    engine_reports_words: ClassVar[bool] = True


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


class DelayedEngine(HalfDuplexEngine):
    """Known words, and a known reply delay: its first audible reply sample plays exactly ``delay_s`` after the
    turn layer's end of speech (``user_speech_end``). It waits until the turn is surely committed, then sends
    silence up to that instant followed by a tone, so the delay does not depend on thread scheduling."""

    Settings = WordsSettings
    user_words = "what is the capital of france"
    reply_words = "paris is the capital of france"
    delay_s = 0.9

    def respond(self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions) -> Iterator[Event]:
        yield TextOut(self.user_words, role="user")
        end = turn.timeline.marks["user_speech_end"]
        committed_by = end + self.settings.end_silence_ms / 1000 + 0.25
        while turn.timeline.clock() < committed_by:
            if turn.cancel.wait(0.01):
                return
        yield TextOut(self.reply_words, role="agent")
        lead = max(0, round((end + self.delay_s - turn.timeline.clock()) * turn.sample_rate))
        yield AudioOut(np.concatenate([silence(lead / turn.sample_rate, turn.sample_rate), tone(0.3, turn.sample_rate)]), turn.sample_rate)


class Recorder:
    """Collects emitted events (thread-safe) and waits for turn ends; with ``engine``, the one observer
    also makes turn records (so turn ends carry ``first_audio_out`` etc.)."""

    def __init__(self, engine: Engine | None = None) -> None:
        self.events: list[Event] = []
        self.observer = TurnObserver.for_engine(engine) if engine is not None else None
        self._cond = threading.Condition()

    def __call__(self, event: Event) -> None:
        if self.observer is not None:
            self.observer.observe(event)
        with self._cond:
            self.events.append(event)
            self._cond.notify_all()

    @property
    def records(self) -> list[TurnRecord]:
        """The turn records made so far."""
        return list(self.observer.records) if self.observer is not None else []

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


class RefusedLoadEngine(ScriptedEngine):
    """Cannot load, and says why (an :class:`EngineError`, as a server that is down)."""

    def _load(self, progress: Progress) -> None:
        raise EngineError("the model server at http://127.0.0.1:9 is unreachable")


class BrokenLoadEngine(ScriptedEngine):
    """Cannot load because of a bug (an exception that is not an :class:`EngineError`)."""

    def _load(self, progress: Progress) -> None:
        raise KeyError("n_layers")


class SlowEngine(ScriptedEngine):
    """Answers, but takes a while over every audio chunk."""

    delay_s = 0.25


class ClosingEngine(ScriptedEngine):
    """Counts how often it is closed."""

    def __init__(self, entry: EngineEntry, device: str = "cpu") -> None:
        super().__init__(entry, device)
        self.closes = 0

    def close(self) -> None:
        self.closes += 1


class GatedLoadEngine(ClosingEngine):
    """Loads only once :attr:`gate` is set (an engine still loading when the app shuts down)."""

    gate = threading.Event()
    loading = threading.Event()

    def _load(self, progress: Progress) -> None:
        type(self).loading.set()
        if not type(self).gate.wait(30):
            raise EngineError("the gate never opened")


def registry_of(*entries: EngineEntry) -> EngineRegistry:
    """A CPU registry over these catalogue entries (the first is the default); classes from ``tests`` allowed."""
    catalog = Catalog(default_engine=entries[0].id, engine_packages=["tests"], engines=list(entries))
    return EngineRegistry(catalog, HostInfo(accelerator="cpu"))


def engine_entry(engine_id: str, label: str, engine_class: str = "ScriptedEngine", weight: float = 1.0) -> EngineEntry:
    """An entry for one of this module's engines, with its own label and blind A/B weight."""
    return entry(engine_id).model_copy(update={"label": label, "engine_class": f"tests.engines_for_tests:{engine_class}", "weight": weight})


def echo_turn(audio: np.ndarray, **defaults: Any) -> tuple[TurnEnd, Recorder]:
    """Feed ``audio`` in real time (20 ms frames) to an echo engine with these catalogue defaults; the turn's
    end and every event the session emitted."""
    from speechlm_demo.audio import chunks
    from speechlm_demo.engines.echo import EchoEngine

    rec = Recorder()
    session = EchoEngine(entry("echo", **defaults)).open_session(SessionOptions(), rec)
    started = time.monotonic()
    for index, piece in enumerate(chunks(audio, 320)):
        time.sleep(max(0.0, started + index * 0.02 - time.monotonic()))
        session.push_audio(piece)
    (end,) = rec.wait_for(TurnEnd)
    session.close()
    return end, rec
