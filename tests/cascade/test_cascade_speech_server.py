"""The cascade with ``tts.kind: openai``: its reply spoken by a ``POST /v1/audio/speech`` server (the fake vLLM
server of ``tests/qwen``, vllm 0.30.0's wire format), its words from an OpenAI-compatible LLM on the same fake."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

from speechlm_demo import catalog
from speechlm_demo.audio import rms_dbfs
from speechlm_demo.engines.base import AudioOut, EngineError, SessionOptions, TextOut, UserTurn
from speechlm_demo.engines.cascade.pipeline import CascadeEngine
from speechlm_demo.timeline import Timeline
from tests.cascade.conftest import need
from tests.qwen.conftest import free_port
from tests.qwen.fake_vllm_omni import FakeServer, FakeState

pytestmark = pytest.mark.slow


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer(FakeState(profile="vllm", token_delay_s=0.005)) as fake:
        yield fake


def cascade(server_url: str, speech_url: str, model: str) -> CascadeEngine:
    row = catalog.load_catalog().get("cascade").model_copy(deep=True)
    settings = {
        **row.defaults,
        "llm": {"kind": "openai", "base_url": f"{server_url}/v1", "model": model},
        "tts": {"kind": "openai", "base_url": f"{speech_url}/v1", "model": "tts-1", "voice": "alloy"},
    }
    engine = CascadeEngine(row.model_copy(update={"defaults": settings}))
    engine.load(lambda fraction, message: None)
    return engine


def reply(engine: CascadeEngine, audio: np.ndarray) -> list:
    turn = UserTurn(turn_id=1, audio=audio, sample_rate=16_000, timeline=Timeline())
    return list(engine.respond(turn, [], SessionOptions(temperature=0.0)))


def test_the_reply_is_spoken_by_the_speech_server(server: FakeServer, spoken: Callable[..., np.ndarray]) -> None:
    need("faster_whisper")
    engine = cascade(server.url, server.url, server.state.model)
    assert [r["input"] for r in server.state.requests if "input" in r] == ["Hi."]  # the load's warm-up
    server.state.requests.clear()
    events = reply(engine, spoken("What is the capital of France?"))
    agent = [e.text for e in events if isinstance(e, TextOut) and e.role == "agent"]
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert agent and agent[0].startswith("You said:")
    assert audio and {a.sample_rate for a in audio} == {24_000}
    assert rms_dbfs(np.concatenate([a.pcm for a in audio])) > -30
    spoken_texts = [r["input"] for r in server.state.requests if "input" in r]
    assert spoken_texts and " ".join(spoken_texts).split() == " ".join(agent).split()
    assert all(r["voice"] == "alloy" and r["response_format"] == "wav" for r in server.state.requests if "input" in r)


def test_a_speech_server_that_is_down_fails_the_load_with_its_reason(server: FakeServer) -> None:
    need("faster_whisper")
    with pytest.raises(EngineError, match=r"cannot connect to the speech server .*is the server running"):
        cascade(server.url, f"http://127.0.0.1:{free_port()}", server.state.model)


def test_a_speech_server_gone_after_the_load_fails_the_turn_with_its_reason(
    server: FakeServer, spoken: Callable[..., np.ndarray]
) -> None:
    need("faster_whisper")
    with FakeServer(FakeState(profile="vllm")) as speech:
        engine = cascade(server.url, speech.url, server.state.model)
    turn = UserTurn(turn_id=1, audio=spoken("What is the capital of France?"), sample_rate=16_000, timeline=Timeline())
    events: list = []
    with pytest.raises(EngineError, match=r"cannot connect to the speech server .*is the server running"):
        for event in engine.respond(turn, [], SessionOptions(temperature=0.0)):
            events.append(event)
    assert [e.text for e in events if isinstance(e, TextOut) and e.role == "user"]  # heard and answered, not spoken
    assert not any(isinstance(e, AudioOut) for e in events)


def test_a_speech_server_answering_garbage_fails_the_turn_with_its_reason(
    server: FakeServer, spoken: Callable[..., np.ndarray]
) -> None:
    need("faster_whisper")
    engine = cascade(server.url, server.url, server.state.model)
    server.state.scenario = "bad_audio"
    turn = UserTurn(turn_id=1, audio=spoken("What is the capital of France?"), sample_rate=16_000, timeline=Timeline())
    with pytest.raises(EngineError, match=r"the speech server .* produced no usable audio"):
        list(engine.respond(turn, [], SessionOptions(temperature=0.0)))


def test_a_barge_in_stops_the_reply_while_the_speech_server_is_still_working(
    server: FakeServer, spoken: Callable[..., np.ndarray]
) -> None:
    need("faster_whisper")
    with FakeServer(FakeState(profile="vllm", slow_s=5.0)) as speech:
        engine = cascade(server.url, speech.url, server.state.model)
        speech.state.scenario = "stalled"
        turn = UserTurn(turn_id=1, audio=spoken("What is the capital of France?"), sample_rate=16_000, timeline=Timeline())
        events: list = []
        stopped_at = 0.0
        for event in engine.respond(turn, [], SessionOptions(temperature=0.0)):
            events.append(event)
            if isinstance(event, TextOut) and event.role == "agent" and not turn.cancel.is_set():
                threading.Timer(0.3, turn.cancel.set).start()
                stopped_at = time.monotonic()
        assert stopped_at and time.monotonic() - stopped_at < 2.5  # not the 5 s the speech server takes
        assert not any(isinstance(e, AudioOut) for e in events)
        assert len(speech.state.requests) >= 2  # the load's warm-up and the cancelled chunk
