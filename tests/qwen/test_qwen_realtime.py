"""The /v1/realtime websocket client (vllm-omni 0.30.0 events) against the fake server."""

from __future__ import annotations

import base64
import threading
import time

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.engines.base import AudioOut, EngineError, Mark, SessionOptions, TextOut
from speechlm_demo.engines.vllm_omni.realtime import RealtimeClient, realtime_url
from tests.qwen.conftest import free_port, make_engine, run_turn, speech_turn
from tests.qwen.fake_vllm_omni import FakeServer
from tests.support.tcp_faults import silent_listener, unaccepting_port


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
    with pytest.raises(EngineError, match=r"sent nothing for 0.2 s \(read timeout\)"):
        list(client.reply(np.full(1600, 0.1, np.float32), threading.Event()))


def test_realtime_connection_serves_the_next_turns(qwen3: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen3-omni-vllm-realtime", monkeypatch, qwen3.url)
    for _ in range(3):
        assert [e for e in run_turn(engine, speech_turn()) if isinstance(e, AudioOut)]
    assert qwen3.state.connections == 1 and engine.realtime.opened == 1
    kinds = [e["type"] for e in qwen3.state.requests]
    assert kinds.count("session.update") == 1 and kinds.count("input_audio_buffer.commit") == 6
    engine.close()


def test_realtime_connection_closed_by_the_server_is_replaced(qwen3: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    qwen3.state.close_after_reply = True  # an idle timeout or a proxy between the turns
    engine = make_engine("qwen3-omni-vllm-realtime", monkeypatch, qwen3.url)
    for _ in range(2):
        text = " ".join(e.text for e in run_turn(engine, speech_turn()) if isinstance(e, TextOut))
        assert text.startswith("I heard 1.3 seconds")
    assert qwen3.state.connections == 2


def test_a_slow_server_holds_up_no_other_turn_and_a_closed_client_keeps_nothing(qwen3: FakeServer) -> None:
    client = RealtimeClient(qwen3.url, qwen3.state.model)
    first = client.reply(np.full(1600, 0.1, np.float32), threading.Event())
    next(first)  # a turn is under way on its own connection
    failures: list[Exception] = []

    def stuck_turn(slow: RealtimeClient) -> None:
        try:
            list(slow.reply(np.zeros(160, np.float32), threading.Event()))
        except EngineError as exc:
            failures.append(exc)

    with silent_listener() as port:  # a server that accepts and never answers the handshake
        slow = RealtimeClient(f"http://127.0.0.1:{port}", "m", read_timeout=3.0)
        stuck = threading.Thread(target=stuck_turn, args=(slow,))
        stuck.start()
        time.sleep(0.3)  # the stuck turn is opening its connection now
        started = time.monotonic()
        slow.close()  # and so are the other turns' check-ins: none may wait for the stuck one
        assert time.monotonic() - started < 0.5
        stuck.join()
    assert len(failures) == 1  # the stuck turn itself fails with a message
    client.close()  # the engine goes away while the first turn still runs
    list(first)
    assert client._idle == []  # its connection was closed, not kept in a closed client
    assert qwen3.state.connections == 1


def test_realtime_kept_connection_that_drops_as_the_turn_starts_is_replaced_once(
    qwen3: FakeServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    qwen3.state.drop_kept = True
    engine = make_engine("qwen3-omni-vllm-realtime", monkeypatch, qwen3.url)
    assert [e for e in run_turn(engine, speech_turn()) if isinstance(e, AudioOut)]
    with caplog.at_level("INFO", logger="speechlm_demo.engines.vllm_omni.realtime"):
        text = " ".join(e.text for e in run_turn(engine, speech_turn()) if isinstance(e, TextOut))
    assert text == "I heard 1.3 seconds of your voice. This is a fake server answering."
    assert qwen3.state.connections == 2 and "had closed; opening a new one" in caplog.text


def test_realtime_connection_is_not_kept_after_a_cancelled_or_failed_turn(qwen3: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen3-omni-vllm-realtime", monkeypatch, qwen3.url)
    turn = speech_turn()
    for event in engine.respond(turn, [], SessionOptions()):
        if isinstance(event, TextOut):
            turn.cancel.set()  # the user spoke again: the server's generation must not run into the next turn
    qwen3.state.scenario = "error_after_200"
    with pytest.raises(EngineError, match="processing_error"):
        run_turn(engine, speech_turn())
    qwen3.state.scenario = "ok"
    text = " ".join(e.text for e in run_turn(engine, speech_turn()) if isinstance(e, TextOut))
    assert text == "I heard 1.3 seconds of your voice. This is a fake server answering."
    assert qwen3.state.connections == 3


def test_realtime_garbled_fields_are_explained(qwen3: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen3-omni-vllm-realtime", monkeypatch, qwen3.url)
    qwen3.state.scenario = "garbled_fields"
    with pytest.raises(EngineError, match="sent a sample_rate_hz that is not a sample rate: '24k'"):
        run_turn(engine, speech_turn())
    qwen3.state.scenario = "ok"
    assert [e for e in run_turn(engine, speech_turn()) if isinstance(e, AudioOut)]


def test_realtime_connect_timeout_is_not_a_read_timeout() -> None:
    with unaccepting_port() as port:
        client = RealtimeClient(f"http://127.0.0.1:{port}", "m", connect_timeout=0.3, read_timeout=30)
        with pytest.raises(EngineError, match=r"did not accept the connection within 0.3 s \(connect timeout\)"):
            list(client.reply(np.zeros(1600, np.float32), threading.Event()))
    with silent_listener() as port:
        client = RealtimeClient(f"http://127.0.0.1:{port}", "m", connect_timeout=0.3, read_timeout=30)
        with pytest.raises(EngineError, match="accepted the connection but did not answer the websocket handshake within 0.3 s"):
            list(client.reply(np.zeros(1600, np.float32), threading.Event()))


@pytest.mark.parametrize("scenario", ["slow", "stalled"])
def test_a_barge_in_while_the_realtime_server_is_quiet_ends_the_turn_at_once(
    qwen3: FakeServer, monkeypatch: pytest.MonkeyPatch, scenario: str
) -> None:
    """Quiet before its first event (slow) or after its first sentence (stalled): the cancel is not held up to the
    read timeout, and the next turn is answered on a new connection."""
    engine = make_engine("qwen3-omni-vllm-realtime", monkeypatch, qwen3.url, read_timeout_s=9)
    qwen3.state.scenario, qwen3.state.slow_s = scenario, 6.0
    turn = speech_turn()
    events = []
    started = time.monotonic()
    for event in engine.respond(turn, [], SessionOptions()):
        events.append(event)
        if isinstance(event, AudioOut) or (scenario == "slow" and isinstance(event, Mark)):
            threading.Timer(0.3, turn.cancel.set).start()
    assert time.monotonic() - started < 2.5  # not the 9 s read timeout, nor the server's 6 s pause
    assert len([e for e in events if isinstance(e, AudioOut)]) == (0 if scenario == "slow" else 1)
    qwen3.state.scenario = "ok"
    text = " ".join(e.text for e in run_turn(engine, speech_turn()) if isinstance(e, TextOut))
    assert text == "I heard 1.3 seconds of your voice. This is a fake server answering."
    assert qwen3.state.connections == 2  # the cancelled turn's connection was not kept


def test_a_reply_that_pauses_shorter_than_the_read_timeout_is_read_whole(qwen3: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads wait in short slices while a cancel may come: a pause of many slices loses no event."""
    engine = make_engine("qwen3-omni-vllm-realtime", monkeypatch, qwen3.url, read_timeout_s=3)
    qwen3.state.scenario, qwen3.state.slow_s = "stalled", 0.6
    events = run_turn(engine, speech_turn())
    text = " ".join(e.text for e in events if isinstance(e, TextOut))
    assert text == "I heard 1.3 seconds of your voice. This is a fake server answering."
    assert len([e for e in events if isinstance(e, AudioOut)]) == 2


def test_a_barge_in_while_the_websocket_handshake_hangs_ends_the_turn_at_once() -> None:
    """The connection opens in a thread of its own: a server that accepts and never answers the handshake holds
    no cancel up to the connect timeout."""
    with silent_listener() as port:
        client = RealtimeClient(f"http://127.0.0.1:{port}", "m", connect_timeout=3, read_timeout=30)
        cancel = threading.Event()
        threading.Timer(0.2, cancel.set).start()
        started = time.monotonic()
        assert list(client.reply(np.full(1600, 0.1, np.float32), cancel)) == []
        assert time.monotonic() - started < 1.5
        client.close()
