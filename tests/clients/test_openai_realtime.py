"""OpenAI Realtime, our turn layer committing turns, against a fake Realtime server."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.compare import answer
from speechlm_demo.engines.base import AudioOut, ErrorEvent, Mark, SessionOptions, TextOut
from speechlm_demo.engines.openai_realtime.connection import RealtimeConnection, RealtimeSettings
from speechlm_demo.engines.openai_realtime.half_duplex import RealtimeEngine
from speechlm_demo.engines.openai_realtime.usage import Prices, turn_usage
from speechlm_demo.engines.server_client import ServerFailure
from tests.support.tcp_faults import silent_listener, unaccepting_port

from .conftest import client_entry, speech, user_turn, with_echo_fallback
from .fake_realtime import KEY, USAGE, FakeRealtime
from .serving import FakeHTTPServer

CLASS = "speechlm_demo.engines.openai_realtime.half_duplex:RealtimeEngine"
PRICES = {"text_in": 4.0, "audio_in": 32.0, "text_out": 16.0, "audio_out": 64.0}


@pytest.fixture(autouse=True)
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", KEY)


def engine_for(url: str, fallback: bool = False, **defaults) -> RealtimeEngine:
    defaults = {"read_timeout_s": 3, "prices": PRICES, **defaults}
    entry = client_entry("gpt-realtime", CLASS, (24_000, 24_000), url=url.replace("http", "ws") + "/v1/realtime", url_env="", fallback="echo" if fallback else None, **defaults)
    engine = RealtimeEngine(entry)
    if fallback:
        with_echo_fallback(engine)
    engine.load()
    return engine


def test_usage_and_cost_from_response_done() -> None:
    usage = turn_usage(USAGE, Prices(**PRICES))
    assert usage["input_audio_tokens"] == 100 and usage["output_audio_tokens"] == 110
    assert usage["cost_usd"] == pytest.approx((20 * 4 + 100 * 32 + 30 * 16 + 110 * 64) / 1e6)
    assert turn_usage(None, Prices())["cost_usd"] == 0


@pytest.mark.parametrize("api", ["ga", "beta"])
def test_a_turn_sends_the_ga_or_beta_events_and_streams_the_reply(api: str, options: SessionOptions) -> None:
    fake = FakeRealtime(reply_s=1.2)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, api=api)
        history: list[dict] = [{"role": "user", "content": "Hello"}, {"role": "assistant", "content": "Hi there."}]
        turn = user_turn(1.0, 24_000)
        events = list(engine.respond(turn, history, options))
        engine.close()
    kinds = [e["type"] for e in fake.client_events]
    assert kinds[0] == "session.update" and kinds[-2:] == ["input_audio_buffer.commit", "response.create"]
    assert kinds.count("conversation.item.create") == 2 and kinds.count("input_audio_buffer.append") == 10
    session = fake.client_events[0]["session"]
    if api == "ga":
        assert session["type"] == "realtime" and session["audio"]["input"]["turn_detection"] is None
        assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24_000}
    else:
        assert session["input_audio_format"] == "pcm16" and session["turn_detection"] is None
    audio = np.concatenate([e.pcm for e in events if isinstance(e, AudioOut)])
    assert len(audio) == pytest.approx(1.2 * 24_000, abs=10) and rms_dbfs(audio) > -20
    texts = [e for e in events if isinstance(e, TextOut) and e.final]
    assert texts[0].role == "user" and texts[0].text.startswith("What is the capital of France?")
    assert texts[-1].text == "The capital of France is Paris."
    assert any(isinstance(e, Mark) and e.name == "llm_first_token" for e in events)
    assert turn.timeline.extra["usage"]["cost_usd"] == pytest.approx(0.0108)
    assert history[-2:] == [{"role": "user", "content": texts[0].text}, {"role": "assistant", "content": "The capital of France is Paris."}]


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("refuse", "HTTP 401 \\(the API key was refused\\)"),
        ("error", "insufficient_quota.*exceeded your current quota"),
        ("garbage", "not a Realtime event"),
        ("failed", "failed the response: The server had an error"),
        ("die", "closed the connection"),
        ("hang", "sent nothing for 1 s"),
    ],
)
def test_server_faults_are_clear_failures(behaviour: str, message: str, options: SessionOptions) -> None:
    with FakeHTTPServer(FakeRealtime(behaviour).app) as url:
        engine = engine_for(url, read_timeout_s=1)
        with pytest.raises(ServerFailure, match=message):
            list(engine.respond(user_turn(1.0, 24_000), [], options))
        engine.close()


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("garbled_audio", "sent audio that is not base64 PCM16: an audio delta must be a base64 string, not int"),
        ("garbled_done", "failed the response: no reason given"),
    ],
)
def test_garbled_fields_fail_the_turn_clearly_and_the_next_turn_works(behaviour: str, message: str, options: SessionOptions) -> None:
    fake = FakeRealtime(behaviour)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, health_backoff_s=0.01)
        with pytest.raises(ServerFailure, match=message):
            list(engine.respond(user_turn(1.0, 24_000), [], options))
        fake.behaviour = "answer"
        time.sleep(0.05)  # the back-off after the failure
        events = list(engine.respond(user_turn(1.0, 24_000, turn_id=2), [], options))
        engine.close()
    assert [e.text for e in events if isinstance(e, TextOut) and e.final][-1] == "The capital of France is Paris."


def test_usage_of_odd_shapes_is_zero_not_a_crash() -> None:
    odd = {"input_tokens": float("nan"), "input_token_details": "many", "output_token_details": {"audio_tokens": 7, "text_tokens": "x"}}
    usage = turn_usage(odd, Prices(**PRICES))
    assert usage["input_tokens"] == 0 and usage["input_audio_tokens"] == 0 and usage["output_audio_tokens"] == 7
    assert usage["cost_usd"] == pytest.approx(7 * 64 / 1e6)


def test_connect_and_handshake_timeouts_are_told_apart() -> None:
    settings = RealtimeSettings(connect_timeout_s=0.3)
    refused = pytest.raises(ServerFailure, match=r"did not accept the connection within 0.3 s \(connect timeout\)")
    with unaccepting_port() as port, refused:
        asyncio.run(RealtimeConnection.open(f"ws://127.0.0.1:{port}/v1/realtime", settings, "gpt-realtime"))
    silent = pytest.raises(ServerFailure, match="accepted the connection but did not answer the websocket handshake within 0.3 s")
    with silent_listener() as port, silent:
        asyncio.run(RealtimeConnection.open(f"ws://127.0.0.1:{port}/v1/realtime", settings, "gpt-realtime"))


def test_a_server_that_dies_mid_reply_fails_that_turn_and_the_next_goes_to_the_fallback(options: SessionOptions) -> None:
    server = FakeHTTPServer(FakeRealtime("die").app)
    with server as url:
        engine = engine_for(url, fallback=True)
        with pytest.raises(ServerFailure):
            list(engine.respond(user_turn(1.0, 24_000), [], options))  # audio went out: no fallback for it
        server.kill()
        turn = user_turn(1.0, 24_000, turn_id=2)
        events = list(engine.respond(turn, [], options))
        engine.close()
    assert turn.timeline.extra["answered_by"] == "echo"
    assert [e for e in events if isinstance(e, ErrorEvent)] and any(isinstance(e, AudioOut) for e in events)


def test_a_whole_turn_through_the_turn_layer() -> None:
    fake = FakeRealtime(reply_s=1.0)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, end_silence_ms=300)
        result = answer(engine, speech(1.2, 24_000), 24_000, timeout_s=10, tail_s=1.5)
        engine.close()
    assert result.ok, result.message
    marks = list(result.timeline["marks_ms"])
    assert marks.index("user_speech_end") < marks.index("turn_detected") < marks.index("first_audio_out") < marks.index("last_audio_out")
    assert result.reply_text == "The capital of France is Paris." and result.user_text.startswith("What is the capital")
    assert result.timeline["extra"]["usage"]["total_tokens"] == 260


def test_the_turn_status_line_shows_tokens_and_cost() -> None:
    from speechlm_demo.timeline import usage_note

    assert usage_note({"usage": turn_usage(USAGE, Prices(**PRICES))}) == " · 260 tokens, $0.0108"
    assert usage_note({}) == ""


def test_the_next_turns_connection_is_opened_ahead_and_a_stale_one_replaced(options: SessionOptions) -> None:
    fake = FakeRealtime(reply_s=0.4)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, warm_max_age_s=0.5)
        deadline = time.monotonic() + 3
        while fake.connections < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert fake.connections == 1, "opened at load, before any turn"
        list(engine.respond(user_turn(0.5, 24_000), [], options))
        assert fake.connections == 2  # the turn used the spare; a new spare is open
        time.sleep(0.6)  # the spare is now too old
        events = list(engine.respond(user_turn(0.5, 24_000, turn_id=2), [], options))
        engine.close()
    assert fake.connections == 4 and any(isinstance(e, AudioOut) for e in events)


def test_a_cancelled_turn_cancels_the_response(options: SessionOptions) -> None:
    fake = FakeRealtime(reply_s=3.0, pace=1.0)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url)
        turn = user_turn(0.5, 24_000)
        audio = 0
        for event in engine.respond(turn, [], options):
            if isinstance(event, AudioOut):
                audio += 1
                turn.cancel.set()  # barge-in: the turn layer cancels the reply
        deadline = time.monotonic() + 3
        while "response.cancel" not in [e["type"] for e in fake.client_events] and time.monotonic() < deadline:
            time.sleep(0.02)
        engine.close()
    assert audio <= 2 and "response.cancel" in [e["type"] for e in fake.client_events]


def test_a_barge_in_while_the_websocket_opens_ends_the_turn_at_once_and_sends_nothing(options: SessionOptions) -> None:
    fake = FakeRealtime("slow_open")
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, warm_connection=False, connect_timeout_s=4)
        turn = user_turn(0.5, 24_000)
        threading.Timer(0.2, turn.cancel.set).start()
        started = time.monotonic()
        events = list(engine.respond(turn, [], options))
        assert time.monotonic() - started < 1.5  # not the 4 s handshake timeout
        assert not [e for e in events if isinstance(e, (AudioOut, TextOut))]
        fake.behaviour = "answer"
        answered = list(engine.respond(user_turn(0.5, 24_000, turn_id=2), [], options))
        engine.close()
    assert any(isinstance(e, AudioOut) for e in answered)
    assert [e["type"] for e in fake.client_events].count("response.create") == 1  # the cancelled turn started none


# the file of openai 3.57.0 ``openai/types/realtime/`` that defines each GA event (listed by ``grep -l
# 'type: Literal["..."]'`` over the unpacked wheel); the fake's docstring must name the file of every event it
# sends or reads, so a new event cannot enter the fake without its source
EVENT_FILES = {
    "session.created": "session_created_event.py",
    "session.updated": "session_updated_event.py",
    "input_audio_buffer.committed": "input_audio_buffer_committed_event.py",
    "input_audio_buffer.speech_started": "input_audio_buffer_speech_started_event.py",
    "input_audio_buffer.speech_stopped": "input_audio_buffer_speech_stopped_event.py",
    "conversation.item.added": "conversation_item_added.py",
    "response.created": "response_created_event.py",
    "response.output_item.added": "response_output_item_added_event.py",
    "response.output_audio_transcript.delta": "response_audio_transcript_delta_event.py",
    "response.output_audio.delta": "response_audio_delta_event.py",
    "response.output_audio.done": "response_audio_done_event.py",
    "response.done": "response_done_event.py",
    "conversation.item.input_audio_transcription.completed": "conversation_item_input_audio_transcription_completed_event.py",
    "conversation.item.truncated": "conversation_item_truncated_event.py",
    "error": "realtime_error_event.py",
    "session.update": "session_update_event.py",
    "conversation.item.create": "conversation_item_create_event.py",
    "input_audio_buffer.append": "input_audio_buffer_append_event.py",
    "input_audio_buffer.commit": "input_audio_buffer_commit_event.py",
    "response.create": "response_create_event.py",
    "response.cancel": "response_cancel_event.py",
    "conversation.item.truncate": "conversation_item_truncate_event.py",
}


def test_the_fake_names_the_openai_file_of_every_event_it_speaks(options: SessionOptions) -> None:
    from . import fake_realtime

    fake = FakeRealtime(reply_s=0.4)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url)
        list(engine.respond(user_turn(1.0, 24_000), [{"role": "user", "content": "Hi"}], options))
        engine.close()
    spoken = fake.sent_types | {e["type"] for e in fake.client_events}
    assert spoken <= EVENT_FILES.keys(), spoken - EVENT_FILES.keys()
    named = [f for f in EVENT_FILES.values() if f"``{f}``" not in (fake_realtime.__doc__ or "")]
    assert not named, f"fake_realtime.py does not name {named}"
