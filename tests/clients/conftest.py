"""Fixtures for the model-server clients: catalogue entries pointing at fakes on 127.0.0.1."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from speechlm_demo.catalog import EngineEntry
from speechlm_demo.engines.base import Engine, SessionOptions, UserTurn
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.timeline import Timeline


def client_entry(engine_id: str, engine_class: str, rates: tuple[int, int], **defaults: Any) -> EngineEntry:
    """A catalogue entry for a client engine (CPU, half duplex)."""
    return EngineEntry.model_validate(
        {
            "id": engine_id,
            "label": engine_id,
            "family": "speechlm",
            "duplex": "half",
            "class": engine_class,
            "sample_rates": {"input": rates[0], "output": rates[1]},
            "accelerators": ["cpu"],
            "licence": "test",
            "defaults": defaults,
        }
    )


def echo_fallback() -> EchoEngine:
    """The fallback the unit tests use (the catalogue's default, the cascade, is used in test_fallback.py's slow test)."""
    engine = EchoEngine(
        EngineEntry.model_validate(
            {"id": "echo", "label": "Echo", "family": "diagnostic", "duplex": "half", "class": "speechlm_demo.engines.echo:EchoEngine", "accelerators": ["cpu"], "licence": "MIT"}
        )
    )
    engine.load()
    return engine


def with_echo_fallback(engine: Engine) -> Engine:
    """Point ``engine``'s fallback at a loaded echo engine."""
    fallback = echo_fallback()
    engine.fallback_source = lambda name: fallback  # type: ignore[attr-defined]
    return engine


def speech(seconds: float = 1.0, rate: int = 16_000) -> np.ndarray:
    """A voiced-sounding tone (loud enough for the energy VAD)."""
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + 0.3 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def user_turn(seconds: float = 1.0, rate: int = 16_000, turn_id: int = 1) -> UserTurn:
    """A committed user turn, for calling ``respond`` directly."""
    return UserTurn(turn_id, speech(seconds, rate), rate, Timeline(turn_id=turn_id))


@pytest.fixture
def options() -> SessionOptions:
    """Default session options."""
    return SessionOptions()
