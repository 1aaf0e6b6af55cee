"""The /v1/realtime websocket client (vllm-omni 0.30.0 events) against the fake server."""

from __future__ import annotations

import base64
import threading

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.engines.base import AudioOut, EngineError, Mark, TextOut
from speechlm_demo.engines.vllm_omni.realtime import RealtimeClient, realtime_url
from tests.qwen.conftest import free_port, make_engine, run_turn, speech_turn
from tests.qwen.fake_vllm_omni import FakeServer


@pytest.fixture
def qwen3(fake: FakeServer) -> FakeServer:
    fake.state.profile = "qwen3-omni"
    return fake


def test_realtime_url() -> None:
    assert realtime_url("http://gpu:8091") == "ws://gpu:8091/v1/realtime"
    assert realtime_url("https://gpu/v1/") == "wss://gpu/v1/realtime"
    assert realtime_url("ws://gpu:8091/v1/realtime") == "ws://gpu:8091/v1/realtime"
    with pytest.raises(EngineError):
        realtime_url("gpu:8091")


def test_realtime_turn_text_and_streamed_audio(qwen3: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen3-omni-vllm-realtime", monkeypatch, qwen3.url)
    events = run_turn(engine, speech_turn(1.0))
    text = " ".join(e.text for e in events if isinstance(e, TextOut))
    assert text == "I heard 1.1 seconds of your voice. This is a fake server answering."
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert len(audio) == 2 and all(a.sample_rate == 24_000 and rms_dbfs(a.pcm) > -20 for a in audio)
    assert [e.name for e in events if isinstance(e, Mark)] == ["request_sent", "first_text", "first_audio_in"]
    sent = qwen3.state.requests
    assert [e["type"] for e in sent[:2]] == ["session.update", "input_audio_buffer.commit"]
    assert sent[0]["model"] == "Qwen/Qwen3-Omni-30B-A3B-Instruct" and "final" not in sent[1]
    appends = [e for e in sent if e["type"] == "input_audio_buffer.append"]
    pcm = np.concatenate([np.frombuffer(base64.b64decode(e["audio"]), dtype=np.int16) for e in appends])
    assert len(pcm) == int(1.1 * 16_000) and len(appends) == 11  # 100 ms per append, PCM16 at 16 kHz
    assert sent[-1] == {"type": "input_audio_buffer.commit", "final": True}


@pytest.mark.parametrize(
    "setup, message",
    [
        ({"served_model": "Qwen/Other"}, "model_not_found: The model `Qwen/Qwen3-Omni-30B-A3B-Instruct` does not exist."),
        ({"scenario": "error_after_200"}, "processing_error: EngineCore encountered an issue."),
        ({"profile": "qwen2.5-omni"}, "unsupported: Realtime API is not available"),
        ({"scenario": "no_audio"}, "sent only text, no audio"),
    ],
)
def test_realtime_errors(qwen3: FakeServer, monkeypatch: pytest.MonkeyPatch, setup: dict, message: str) -> None:
    engine = make_engine("qwen3-omni-vllm-realtime", monkeypatch, qwen3.url)
    qwen3.state.scenario = setup.get("scenario", "ok")
    qwen3.state.profile = setup.get("profile", "qwen3-omni")
    qwen3.state.served_model = setup.get("served_model")
    with pytest.raises(EngineError, match=message):
        run_turn(engine, speech_turn())
    qwen3.state.scenario, qwen3.state.profile, qwen3.state.served_model = "ok", "qwen3-omni", None
    assert [e for e in run_turn(engine, speech_turn()) if isinstance(e, AudioOut)]


def test_realtime_server_down_and_timeout(qwen3: FakeServer) -> None:
    with pytest.raises(EngineError, match="cannot connect to the vLLM-Omni realtime server"):
        list(RealtimeClient(f"http://127.0.0.1:{free_port()}", "m").reply(np.zeros(1600, np.float32), threading.Event()))
    qwen3.state.token_delay_s = 1.0
    client = RealtimeClient(qwen3.url, qwen3.state.model, read_timeout=0.2)
    with pytest.raises(EngineError, match="sent nothing for 0.2 s"):
        list(client.reply(np.full(1600, 0.1, np.float32), threading.Event()))
