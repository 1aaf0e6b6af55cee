"""The first spoken chunk's size comes from the catalogue (``first_chunk_words``); no weights needed."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from speechlm_demo.catalog import EngineEntry
from speechlm_demo.engines.base import SessionOptions
from speechlm_demo.engines.cascade.pipeline import CascadeEngine


class ScriptedLLM:
    """Streams fixed pieces, like a language model would."""

    def __init__(self, text: str) -> None:
        self.pieces = [word + " " for word in text.split()]
        self.asked: list[tuple[float | None, int | None]] = []  # (temperature, seed) of each request

    def stream(
        self, messages: Any, cancel: threading.Event, *, temperature: float | None = None, seed: int | None = None
    ) -> Iterator[str]:
        self.asked.append((temperature, seed))
        yield from self.pieces


def chunks_spoken(defaults: dict[str, Any], reply: str) -> list[str]:
    engine = chunking_engine(defaults, reply)
    items: queue.Queue[Any] = queue.Queue()
    spoken = threading.Event()
    spoken.set()
    engine._produce([], SessionOptions(), items, threading.Event(), spoken)
    return [item for item in items.queue if isinstance(item, str)]


def chunking_engine(defaults: dict[str, Any], reply: str) -> CascadeEngine:
    engine = CascadeEngine(
        EngineEntry.model_validate(
            {
                "id": "cascade",
                "label": "Cascade",
                "family": "cascade",
                "duplex": "half",
                "class": "speechlm_demo.engines.cascade.pipeline:CascadeEngine",
                "sample_rates": {"input": 16000, "output": 22050},
                "accelerators": ["cpu"],
                "licence": "MIT",
                "defaults": defaults,
            }
        )
    )
    engine.llm = ScriptedLLM(reply)
    return engine


def test_the_sessions_temperature_and_seed_reach_the_llm() -> None:
    engine = chunking_engine({}, "Paris.")
    spoken = threading.Event()
    spoken.set()
    engine._produce([], SessionOptions(temperature=0.7, seed=11), queue.Queue(), threading.Event(), spoken)
    engine._produce([], SessionOptions(), queue.Queue(), threading.Event(), spoken)
    assert engine.llm.asked == [(0.7, 11), (None, None)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "defaults, first",
    [
        ({}, "Paris is the capital of the French Republic."),
        ({"first_chunk_words": 2}, "Paris is the capital"),
    ],
)
def test_first_chunk_size_follows_the_setting(defaults: dict[str, Any], first: str) -> None:
    chunks = chunks_spoken(defaults, "Paris is the capital of the French Republic. It is on the Seine.")
    assert chunks[0] == first
    assert " ".join(chunks) == "Paris is the capital of the French Republic. It is on the Seine."
