"""OpenAI Realtime with the server's VAD (full duplex) against the fake Realtime server."""

from __future__ import annotations

import time

import numpy as np
import pytest

from speechlm_demo.audio import chunks
from speechlm_demo.compare import answer
from speechlm_demo.engines.base import AudioOut, ErrorEvent, Event, Interrupt, SessionOptions, TextOut, TurnEnd
from speechlm_demo.engines.openai_realtime.server_vad import RealtimeServerVadEngine

from .conftest import client_entry, speech
from .fake_realtime import KEY, FakeRealtime
from .serving import FakeHTTPServer

CLASS = "speechlm_demo.engines.openai_realtime.server_vad:RealtimeServerVadEngine"


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def engine_for(url: str, **defaults) -> RealtimeServerVadEngine:
    entry = client_entry("gpt-realtime-vad", CLASS, (24_000, 24_000), url=url.replace("http", "ws") + "/v1/realtime", url_env="", prices={"audio_out": 64.0}, **defaults)
    entry = entry.model_copy(update={"duplex": "full"})
    engine = RealtimeServerVadEngine(entry)
    engine.load()
    return engine


def feed(session, audio: np.ndarray) -> None:
    start = time.monotonic()
    for index, piece in enumerate(chunks(audio, 480)):
        time.sleep(max(0.0, start + index * 0.02 - time.monotonic()))
        session.push_audio(piece)


def test_the_server_decides_the_turn_and_the_reply_is_measured() -> None:
    fake = FakeRealtime(reply_s=1.0)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, vad_silence_ms=400)
        result = answer(engine, speech(1.0, 24_000), 24_000, timeout_s=10, window_s=3.0)
        engine.close()
    assert result.ok, result.message
    session = fake.client_events[0]["session"]
    assert session["audio"]["input"]["turn_detection"]["type"] == "server_vad"
    assert session["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 400
    assert not [e for e in fake.client_events if e["type"] in ("input_audio_buffer.commit", "response.create")]
    assert len(result.audio) > 0.8 * 24_000 and result.reply_text == "The capital of France is Paris."
    assert result.timeline["extra"]["usage"]["output_audio_tokens"] == 110
    assert result.timeline["extra"]["usage"]["cost_usd"] == pytest.approx(110 * 64 / 1e6)


def test_talking_over_the_reply_cancels_and_truncates_it() -> None:
    fake = FakeRealtime(reply_s=3.0, pace=1.0)
    got: list[Event] = []
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, vad_silence_ms=300)
        session = engine.open_session(SessionOptions(), got.append)
        assert session.connected.wait(5)
        feed(session, np.concatenate([speech(0.8, 24_000), np.zeros(int(1.5 * 24_000), np.float32)]))
        assert any(isinstance(e, AudioOut) for e in got), "the reply started"
        feed(session, np.concatenate([speech(0.6, 24_000), np.zeros(int(0.5 * 24_000), np.float32)]))
        session.flush()
        session.close()
        engine.close()
    assert any(isinstance(e, Interrupt) for e in got)
    sent = [e["type"] for e in fake.client_events]
    assert "response.cancel" in sent
    truncate = next(e for e in fake.client_events if e["type"] == "conversation.item.truncate")
    assert 0 < truncate["audio_end_ms"] < 3000 and truncate["content_index"] == 0
    errors = [e.message for e in got if isinstance(e, ErrorEvent)]
    assert not errors, errors  # response_cancel_not_active (the server interrupted first) is expected and ignored
    assert [e for e in got if isinstance(e, TurnEnd)]
    assert [e for e in got if isinstance(e, TextOut) and e.role == "user"]


def test_a_refused_key_is_a_clear_fatal_message() -> None:
    with FakeHTTPServer(FakeRealtime("refuse").app) as url:
        engine = engine_for(url, health_backoff_s=0.05)
        got: list[Event] = []
        session = engine.open_session(SessionOptions(), got.append)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(isinstance(e, ErrorEvent) and e.fatal for e in got):
            time.sleep(0.05)
        session.close()
        engine.close()
    errors = [e for e in got if isinstance(e, ErrorEvent)]
    assert errors[-1].fatal and "HTTP 401 (the API key was refused)" in errors[-1].message
