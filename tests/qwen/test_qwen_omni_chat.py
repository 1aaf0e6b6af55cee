"""The vLLM-Omni chat engine against the fake server (vllm-omni 0.30.0 wire format): replies and failures."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.engines.base import AudioOut, EngineError, Mark, SessionOptions, TextOut
from speechlm_demo.engines.openai_http import ServerSilent
from speechlm_demo.engines.vllm_omni.engine import QWEN_SYSTEM_PROMPT
from tests.qwen.conftest import closing_listener, free_port, make_engine, run_turn, speech_turn
from tests.qwen.fake_vllm_omni import FakeServer
from tests.support.tcp_faults import silent_listener


def audio_of(events: list) -> list[AudioOut]:
    return [e for e in events if isinstance(e, AudioOut)]


def text_of(events: list) -> str:
    return " ".join(e.text for e in events if isinstance(e, TextOut))


def marks_of(events: list) -> list[str]:
    return [e.name for e in events if isinstance(e, Mark)]


def test_streamed_reply_text_then_one_audio_chunk(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url)
    events = run_turn(engine, speech_turn(1.2), options=SessionOptions(system_prompt="Answer briefly.", voice="Ethan"))
    assert text_of(events) == "I heard 1.3 seconds of your voice. This is a fake server answering."
    audio = audio_of(events)
    assert len(audio) == 1 and audio[0].sample_rate == 24_000 and rms_dbfs(audio[0].pcm) > -20
    assert audio[0].duration_s == pytest.approx(0.06 * 13, abs=0.01)  # 60 ms per word of the reply
    assert marks_of(events) == ["request_sent", "first_text", "first_audio_in"]
    # Qwen2.5-Omni (async_chunk false): every text event comes before the audio
    kinds = [type(e).__name__ for e in events if isinstance(e, (TextOut, AudioOut))]
    assert kinds == ["TextOut", "TextOut", "AudioOut"]
    body = fake.state.requests[-1]
    assert body["stream"] is True and body["modalities"] == ["text", "audio"] and body["speaker"] == "Ethan"
    assert body["model"] == "Qwen/Qwen2.5-Omni-7B"
    system = body["messages"][0]
    assert system["role"] == "system" and system["content"] == QWEN_SYSTEM_PROMPT + "\n\nAnswer briefly."
    part = body["messages"][-1]["content"][0]
    assert part["type"] == "audio_url" and part["audio_url"]["url"].startswith("data:audio/wav;base64,")
    sent, rate = sf.read(io.BytesIO(base64.b64decode(part["audio_url"]["url"].split(",", 1)[1])))
    assert rate == 16_000 and len(sent) == int(1.3 * 16_000)


def test_qwen3_audio_streams_while_text_goes_on(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.state.profile = "qwen3-omni"
    engine = make_engine("qwen3-omni-vllm", monkeypatch, fake.url)
    events = run_turn(engine, speech_turn(0.8))
    kinds = [type(e).__name__ for e in events if isinstance(e, (TextOut, AudioOut))]
    assert kinds == ["TextOut", "AudioOut", "TextOut", "AudioOut"]  # sentence 1's audio before sentence 2's text
    assert all(rms_dbfs(a.pcm) > -20 for a in audio_of(events))
    assert fake.state.requests[-1]["speaker"] == "Ethan"  # the catalogue's default voice


def test_unknown_voice_falls_back_to_the_default(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url)
    run_turn(engine, speech_turn(), options=SessionOptions(voice="Piper Joe"))
    assert fake.state.requests[-1]["speaker"] == "Chelsie"
    run_turn(engine, speech_turn(), options=SessionOptions(voice=" ethan "))
    assert fake.state.requests[-1]["speaker"] == "Ethan"


def test_non_streamed_reply(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url, stream=False)
    events = run_turn(engine, speech_turn(1.0))
    assert "stream" not in fake.state.requests[-1]
    assert text_of(events).startswith("I heard 1.1 seconds")
    audio = audio_of(events)
    assert len(audio) == 1 and rms_dbfs(audio[0].pcm) > -20 and audio[0].sample_rate == 24_000


def test_non_streamed_reply_without_audio(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url, stream=False)
    fake.state.scenario = "no_audio"
    with pytest.raises(EngineError, match="HTTP 400: Audio generation completed but no audio was produced"):
        run_turn(engine, speech_turn())


def test_history_carries_earlier_turns(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url, history_turns=1)
    history: list = []
    run_turn(engine, speech_turn(0.5, 1), history)
    run_turn(engine, speech_turn(0.7, 2), history)
    roles = [m["role"] for m in fake.state.requests[-1]["messages"]]
    assert roles == ["system", "user", "assistant", "user"]
    assert fake.state.requests[-1]["messages"][2]["content"].startswith("I heard 0.6 seconds")
    run_turn(engine, speech_turn(0.9, 3), history)
    assert len(history) == 2 and history[1]["content"].startswith("I heard 1.0 seconds")  # only the last turn kept


@pytest.mark.parametrize(
    "scenario, message",
    [
        ("error_after_200", "reported an error: Engine loop is not running"),
        ("http_500", "HTTP 500: EngineCore encountered an issue"),
        ("midway", "stopped mid-reply"),
        ("malformed", "malformed JSON"),
        ("no_audio", "sent only text, no audio"),
        ("bad_audio", "audio that cannot be decoded"),
        ("garbled_fields", "sent audio_metadata that is not an object: 'wav@24k'"),
    ],
)
def test_server_failures_fail_the_turn_with_a_clear_message(fake: FakeServer, monkeypatch: pytest.MonkeyPatch, scenario: str, message: str) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url)
    fake.state.scenario = scenario
    with pytest.raises(EngineError, match=message):
        run_turn(engine, speech_turn())
    fake.state.scenario = "ok"  # the same engine answers the next turn
    assert audio_of(run_turn(engine, speech_turn()))


def test_http_4xx_bodies_are_quoted(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url)
    fake.state.profile = "qwen3-omni"  # the server now serves another model
    with pytest.raises(EngineError, match=r"HTTP 404: The model `Qwen/Qwen2.5-Omni-7B` does not exist. \(NotFoundError\)"):
        run_turn(engine, speech_turn())
    fake.state.profile = "qwen2.5-omni"
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url, speaker="Nobody")
    with pytest.raises(EngineError, match="HTTP 400: Invalid speaker 'Nobody'. Supported: chelsie, ethan"):
        run_turn(engine, speech_turn())


def test_a_server_of_another_model_is_refused_at_load(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EngineError, match=r"serves Qwen/Qwen2.5-Omni-7B, not Qwen/Qwen3-Omni-30B-A3B-Instruct: point VLLM_OMNI_URL"):
        make_engine("qwen3-omni-vllm", monkeypatch, fake.url)


def test_read_timeout(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    fake.state.scenario, fake.state.slow_s = "slow", 2.0
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url, read_timeout_s=0.3)
    with pytest.raises(EngineError, match=r"sent nothing for 0.3 s"):
        run_turn(engine, speech_turn())


def test_a_server_that_accepts_but_never_answers_fails_the_load_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    with silent_listener() as port, pytest.raises(ServerSilent) as refused:
        make_engine("qwen2.5-omni-vllm", monkeypatch, f"http://127.0.0.1:{port}", probe_timeout_s=0.5, read_timeout_s=3)
    assert str(refused.value) == (
        f"the vLLM-Omni server at http://127.0.0.1:{port} accepts connections but does not answer "
        f"(no answer to GET http://127.0.0.1:{port}/v1/models within 0.5 s): is it busy or hung?"
    )


def test_a_reply_that_does_not_start_fails_at_the_first_byte_timeout(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url, first_byte_timeout_s=0.5, read_timeout_s=30)
    fake.state.scenario, fake.state.slow_s = "stalled", 4.0
    with pytest.raises(ServerSilent, match=r"does not answer \(the reply did not start within 0.5 s \(first-byte timeout\)\)"):
        run_turn(engine, speech_turn())


def test_a_started_stream_may_pause_longer_than_the_first_byte_timeout(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url, first_byte_timeout_s=0.3, read_timeout_s=10)
    fake.state.scenario, fake.state.slow_s = "slow", 1.0  # headers at once, the first event a second later
    events = run_turn(engine, speech_turn())
    assert text_of(events) and audio_of(events) and rms_dbfs(audio_of(events)[0].pcm) > -30


def test_server_down_and_dying_on_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EngineError, match=r"cannot connect to the vLLM-Omni server at http://127.0.0.1:\d+ \(is the server running\?\)"):
        run_turn(engine, speech_turn())
    port, stop = closing_listener()
    try:
        engine = make_engine("qwen2.5-omni-vllm", monkeypatch, f"http://127.0.0.1:{port}")
        with pytest.raises(EngineError, match="vLLM-Omni server"):
            run_turn(engine, speech_turn())
    finally:
        stop.set()


def test_missing_url_and_bad_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from speechlm_demo.catalog import CatalogError, load_catalog
    from speechlm_demo.engines.vllm_omni.engine import VllmOmniEngine

    monkeypatch.delenv("VLLM_OMNI_URL", raising=False)
    entry = load_catalog().get("qwen2.5-omni-vllm")
    with pytest.raises(EngineError, match="set VLLM_OMNI_URL"):
        VllmOmniEngine(entry).load()
    monkeypatch.setenv("VLLM_OMNI_URL", "gpu-box:8091")  # no scheme: refused at load, not at the first turn
    with pytest.raises(EngineError, match=r"'gpu-box:8091' \(\$VLLM_OMNI_URL\) is not an http\(s\) URL"):
        VllmOmniEngine(entry).load()
    bad = entry.model_copy(update={"defaults": {**entry.defaults, "strem": False}})
    with pytest.raises(EngineError, match="qwen2.5-omni-vllm.*strem: Extra inputs are not permitted"):
        VllmOmniEngine(bad)
    text = Path(load_catalog.__globals__["DEFAULT_CATALOG"]).read_text().replace("      speaker: Chelsie\n", "      speaker: Chelsie\n      transport: carrier-pigeon\n", 1)
    (tmp_path / "engines.yaml").write_text(text)
    with pytest.raises(CatalogError, match="qwen2.5-omni-vllm.*transport"):
        load_catalog(tmp_path / "engines.yaml")


def test_empty_turn_is_refused(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    from speechlm_demo.engines.base import UserTurn
    from speechlm_demo.timeline import Timeline

    engine = make_engine("qwen2.5-omni-vllm", monkeypatch, fake.url)
    with pytest.raises(EngineError, match="no audio"):
        run_turn(engine, UserTurn(1, np.zeros(0, np.float32), 16_000, Timeline(1)))


def test_error_bodies_are_read_in_every_shape() -> None:
    from speechlm_demo.engines.openai_http import error_text

    assert error_text('{"error":{"message":"bad","type":"BadRequestError","param":null,"code":400}}') == "bad (BadRequestError)"
    assert error_text('{"detail":"Chat completion failed"}') == "Chat completion failed"
    assert error_text('{"error":"Realtime API is not available"}') == "Realtime API is not available"
    assert error_text("<html>502 Bad Gateway</html>") == "<html>502 Bad Gateway</html>"
    assert error_text("") == "(empty body)"
