"""The moshi-server client against Kyutai's own ``moshi.server`` (subprocess, tiny random weights, CPU)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("sphn")

from speechlm_demo.engines.base import AudioOut, ErrorEvent, Event, SessionOptions, TextOut, TurnEnd
from speechlm_demo.engines.moshi.remote import MoshiRemoteEngine
from speechlm_demo.engines.moshi.settings import URL_ENV
from tests.moshi.conftest import ServerProcess, moshi_entry

pytestmark = pytest.mark.slow


def test_conversation_with_kyutais_server(moshi_server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(URL_ENV, moshi_server.url)  # the environment wins over the catalogue's url
    engine = MoshiRemoteEngine(moshi_entry("moshi-remote", "speechlm_demo.engines.moshi.remote:MoshiRemoteEngine",
                                           48_000, url="ws://127.0.0.1:1/unused"))
    engine.load()
    events: list[Event] = []
    try:
        session = engine.open_session(SessionOptions(), events.append)
        assert session.connected.wait(30), "no handshake from moshi.server"
        rate, chunk = 48_000, 960
        t = np.arange(rate) / rate
        voice = 0.3 * np.sin(2 * np.pi * 180 * t)
        audio = np.concatenate([np.zeros(rate // 4), voice, np.zeros(rate * 3 // 2)]).astype(np.float32)
        started = time.monotonic()
        for index in range(0, len(audio), chunk):
            time.sleep(max(0.0, started + index / rate - time.monotonic()))
            session.push_audio(audio[index : index + chunk])
        session.flush()
        session.close()
    finally:
        engine.close()
    assert session.connections == 1 and session.sent_s > 2.5
    audio_out = [e for e in events if isinstance(e, AudioOut)]
    assert audio_out and all(a.sample_rate == 24_000 for a in audio_out)
    assert sum(a.duration_s for a in audio_out) > 2.0
    assert [e for e in events if isinstance(e, TextOut)], "the tiny model's inner monologue reaches us as words"
    (turn_end,) = [e for e in events if isinstance(e, TurnEnd)]
    assert turn_end.timeline.between_ms("user_speech_start", "user_speech_end") == pytest.approx(1000, abs=150)
    assert turn_end.timeline.status == "ok"
    assert not [e for e in events if isinstance(e, ErrorEvent)]


def test_server_dying_mid_stream_is_reported(moshi_server: ServerProcess) -> None:
    """Runs last in this module: it stops the server."""
    engine = MoshiRemoteEngine(moshi_entry("moshi-remote", "speechlm_demo.engines.moshi.remote:MoshiRemoteEngine",
                                           url=moshi_server.url, reconnect_attempts=1, reconnect_backoff_s=0.1))
    engine.load()
    events: list[Any] = []
    try:
        session = engine.open_session(SessionOptions(), events.append)
        assert session.connected.wait(30)
        for _ in range(10):
            session.push_audio(np.zeros(1920, np.float32))
            time.sleep(0.08)
        moshi_server.process.kill()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not any(isinstance(e, ErrorEvent) and e.fatal for e in events):
            session.push_audio(np.zeros(1920, np.float32))
            time.sleep(0.08)
        session.close()
    finally:
        engine.close()
    errors = [e for e in events if isinstance(e, ErrorEvent)]
    assert errors[0].message.endswith("reconnecting...") and not errors[0].fatal
    assert errors[-1].fatal and "gave up after 1 attempts" in errors[-1].message
