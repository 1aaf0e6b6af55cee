"""Fixtures for the model-server clients: catalogue entries pointing at fakes on 127.0.0.1."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from speechlm_demo.catalog import EngineEntry
from speechlm_demo.engines.base import Engine, SessionOptions, UserTurn
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.engines.fallback import ServerEngine
from speechlm_demo.engines.server_client import ServerFailure
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


QUIET_MESSAGES = {  # what a client says when its server goes quiet, for read_timeout_s=1
    "silent": r"^{name} sent no reply within 1 s: the server is busy or hung\.$",  # before the first byte
    "stall": r"^{name} stopped sending in the middle of its reply \(nothing for 1 s\)$",  # mid-reply
}


def quiet_message(name: str, behaviour: str) -> str:
    """The message (a regex) of engine ``name`` when its server goes quiet: ``silent`` or ``stall``."""
    return QUIET_MESSAGES[behaviour].format(name=re.escape(name))


def quiet_turn_then_next(
    engine: ServerEngine, fake: Any, message: str, options: SessionOptions, resume: Callable[[], None] | None = None
) -> tuple[list, list]:
    """One turn against a ``fake`` server that goes quiet (``engine`` has ``read_timeout_s=1``): it must fail with
    ``message`` (a regex) at that read timeout, not a longer one. Then the fake answers again (its ``behaviour``
    set to ``"answer"``, and ``resume`` called for a fake that holds the stalled reply) and the next turn is asked.
    Returns the events of the failed turn (what came before the quiet) and of the next one."""
    events: list = []
    started = time.monotonic()
    with pytest.raises(ServerFailure, match=message):
        for event in engine.respond(user_turn(), [], options):
            events.append(event)  # noqa: PERF402 - what came before the failure is kept
    waited = time.monotonic() - started
    fake.behaviour = "answer"
    if resume is not None:
        resume()
    time.sleep(0.05)  # the back-off after the failure
    second = list(engine.respond(user_turn(turn_id=2), [], options))
    assert 1.0 <= waited < 4.0  # the read timeout, not a longer one (loaded CI machines lag)
    return events, second


def barge_in_while_quiet(
    engine: ServerEngine, fake: Any, options: SessionOptions, resume: Callable[[], None] | None = None
) -> tuple[list, list]:
    """The user speaks again 0.3 s into a turn whose ``fake`` server has gone quiet (``engine`` has
    ``read_timeout_s=8``): the turn ends at once, without a failure, not at the read timeout; then the fake
    answers again (``resume`` for a fake that holds the quiet reply) and the next turn is asked. Returns the
    events of both turns."""
    turn = user_turn()
    threading.Timer(0.3, turn.cancel.set).start()
    started = time.monotonic()
    quiet = list(engine.respond(turn, [], options))
    assert time.monotonic() - started < 2.5  # the cancel, not the 8 s read timeout
    fake.behaviour = "answer"
    if resume is not None:
        resume()
    return quiet, list(engine.respond(user_turn(turn_id=2), [], options))


@pytest.fixture
def options() -> SessionOptions:
    """Default session options."""
    return SessionOptions()
