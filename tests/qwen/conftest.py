"""Fixtures for the vLLM-Omni / vLLM client tests: the fake server on 127.0.0.1 and engines from the real catalogue."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from speechlm_demo.catalog import load_catalog
from speechlm_demo.engines.base import Event, SessionOptions, UserTurn
from speechlm_demo.engines.registry import engine_class
from speechlm_demo.timeline import Timeline
from speechlm_demo.turntaking.half_duplex import HalfDuplexEngine
from tests.engines_for_tests import silence, tone
from tests.qwen.fake_vllm_omni import FakeServer, FakeState


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    """A fake vLLM-Omni server (profile qwen2.5-omni); tests change ``fake.state`` as they need."""
    with FakeServer(FakeState(token_delay_s=0.005, audio_delay_s=0.03)) as server:
        yield server


def make_engine(engine_id: str, monkeypatch: pytest.MonkeyPatch, url: str, **overrides: Any) -> HalfDuplexEngine:
    """The catalogue's engine ``engine_id``, pointed at ``url`` (through its URL variable), loaded."""
    entry = load_catalog().get(engine_id)
    if overrides:
        entry = entry.model_copy(update={"defaults": {**entry.defaults, **overrides}})
    for name in ("VLLM_OMNI_URL", "VLLM_URL", "TTS_URL"):
        monkeypatch.setenv(name, url)
    engine = engine_class(entry.engine_class)(entry, "cpu")
    engine.load()
    assert isinstance(engine, HalfDuplexEngine)
    return engine


def speech_turn(seconds: float = 1.2, turn_id: int = 1) -> UserTurn:
    """A turn of tone standing in for speech, at 16 kHz."""
    return UserTurn(turn_id, np.concatenate([tone(seconds), silence(0.1)]), 16_000, Timeline(turn_id))


def run_turn(engine: HalfDuplexEngine, turn: UserTurn, history: list[dict[str, Any]] | None = None, options: SessionOptions | None = None) -> list[Event]:
    """All events of one ``respond`` call."""
    return list(engine.respond(turn, [] if history is None else history, options or SessionOptions()))


def free_port() -> int:
    """A port nothing listens on (for 'server down')."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def closing_listener() -> tuple[int, threading.Event]:
    """A TCP server that accepts and closes at once: a server that dies on connect."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    stop = threading.Event()

    def serve() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                conn.close()
            except OSError:
                continue
        sock.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1], stop
