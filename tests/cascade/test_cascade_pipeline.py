"""CascadeEngine end to end on the real offline stages."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.catalog import EngineEntry, SampleRates
from speechlm_demo.engines.base import AudioOut, EngineError, Event, Mark, SessionOptions, TextOut, TurnEnd, UserTurn
from speechlm_demo.engines.cascade.pipeline import NOTHING_HEARD, CascadeEngine
from speechlm_demo.engines.cascade.silero import SileroVAD
from speechlm_demo.timeline import Timeline
from speechlm_demo.turntaking.half_duplex import HalfDuplexSession
from tests.cascade.conftest import need
from tests.engines_for_tests import Recorder

pytestmark = pytest.mark.slow

OFFLINE_DEFAULTS = {
    "asr": {"kind": "faster-whisper", "model": "offline", "language": "en"},
    "llm": {"kind": "llama-cpp", "model": "offline", "max_tokens": 60},
    "tts": {"kind": "piper", "voice": "offline"},
    "end_silence_ms": 400,
}


def entry(defaults: dict) -> EngineEntry:
    return EngineEntry.model_validate(
        {
            "id": "cascade",
            "label": "Offline cascade",
            "family": "cascade",
            "duplex": "half",
            "class": "speechlm_demo.engines.cascade.pipeline:CascadeEngine",
            "sample_rates": {"input": 16000, "output": 22050},
            "accelerators": ["cpu"],
            "licence": "MIT / Apache-2.0",
            "defaults": defaults,
        }
    )


@pytest.fixture(scope="module")
def engine() -> CascadeEngine:
    need("faster_whisper", "llama_cpp", "piper")
    cascade = CascadeEngine(entry(OFFLINE_DEFAULTS))
    steps: list[tuple[float, str]] = []
    cascade.load(lambda fraction, message: steps.append((fraction, message)))
    assert steps[0][0] == 0.0 and steps[-1] == (1.0, "ready")
    return cascade


def turn_of(audio: np.ndarray, rate: int) -> UserTurn:
    return UserTurn(turn_id=1, audio=audio, sample_rate=rate, timeline=Timeline())


def test_answers_a_spoken_question(engine: CascadeEngine, spoken: Callable[..., np.ndarray]) -> None:
    history: list[dict[str, str]] = []
    turn = turn_of(spoken("What is the capital of France?", rate=22_050), 22_050)  # resampled to 16 kHz inside
    events = list(engine.respond(turn, history, SessionOptions(temperature=0.0)))

    user = [e.text for e in events if isinstance(e, TextOut) and e.role == "user"]
    agent = [e.text for e in events if isinstance(e, TextOut) and e.role == "agent"]
    audio = [e for e in events if isinstance(e, AudioOut)]
    marks = {e.name: e.t for e in events if isinstance(e, Mark)}
    assert len(user) == 1 and "capital" in user[0].lower() and "france" in user[0].lower()
    assert agent and all(text.strip() for text in agent)
    assert audio and {a.sample_rate for a in audio} == {22_050}
    assert rms_dbfs(np.concatenate([a.pcm for a in audio])) > -30
    assert marks["asr_final"] < marks["llm_first_token"] <= marks["llm_first_sentence"]
    first_audio = next(i for i, e in enumerate(events) if isinstance(e, AudioOut))
    first_agent = next(i for i, e in enumerate(events) if isinstance(e, TextOut) and e.role == "agent")
    assert first_agent < first_audio
    assert history == [{"role": "user", "content": user[0]}, {"role": "assistant", "content": " ".join(agent)}]


def test_silence_is_answered_without_calling_the_llm(engine: CascadeEngine) -> None:
    history: list[dict[str, str]] = []
    events = list(engine.respond(turn_of(np.zeros(16_000, np.float32), 16_000), history, SessionOptions()))
    assert [e for e in events if isinstance(e, TextOut)] == [TextOut(NOTHING_HEARD, role="agent")]
    assert not any(isinstance(e, AudioOut) for e in events)
    assert history == []


def test_cancel_stops_the_reply_and_the_llm_thread(engine: CascadeEngine, spoken: Callable[..., np.ndarray]) -> None:
    turn = turn_of(spoken("Tell me a long story about a dragon."), 16_000)
    options = SessionOptions(system_prompt="Tell very long stories.")
    events: list[Event] = []
    for event in engine.respond(turn, [], options):
        events.append(event)
        if isinstance(event, AudioOut):
            turn.cancel.set()
    assert sum(isinstance(e, AudioOut) for e in events) == 1
    deadline = time.monotonic() + 2
    while any(t.name == "cascade-llm" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not any(t.name == "cascade-llm" for t in threading.enumerate())


def test_history_keeps_up_to_ten_turns_cut_in_blocks(engine: CascadeEngine, spoken: Callable[..., np.ndarray]) -> None:
    """Past ten exchanges the history is cut to the last five (in blocks: see test_cascade_history_cache)."""
    history = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"m{i}"} for i in range(20)]
    list(engine.respond(turn_of(spoken("Hello"), 16_000), history, SessionOptions()))
    assert len(history) == 10 and history[0]["content"] == "m12"


def test_through_the_turn_layer_with_silero(engine: CascadeEngine, spoken: Callable[..., np.ndarray]) -> None:
    recorder = Recorder(engine)  # the one observer makes the turn record, as every consumer reads it
    session = engine.open_session(SessionOptions(), recorder)
    assert isinstance(session, HalfDuplexSession) and isinstance(session.detector.vad, SileroVAD)
    silence = np.zeros(8_000, np.float32)
    stream = np.concatenate([silence, spoken("What is the capital of France?"), silence, silence])
    for i in range(0, len(stream), 320):  # 20 ms frames, like WebRTC
        session.push_audio(stream[i : i + 320])
    recorder.wait_for(TurnEnd, timeout=30)
    session.close()
    (record,) = recorder.records
    assert record.status == "ok"
    assert "capital" in record.user_text.lower()
    assert record.reply_text and max(float(np.abs(a.pcm).max()) for a in recorder.of(AudioOut)) > 0.01
    marks = record.timeline.marks
    assert {"asr_final", "llm_first_token", "llm_first_sentence", "first_audio_out"} <= set(marks)
    assert marks["user_speech_end"] <= marks["asr_final"] <= marks["llm_first_token"] <= marks["first_audio_out"]


def test_stage_failures_are_readable() -> None:
    need("faster_whisper", "llama_cpp")
    with pytest.raises(EngineError, match=r"entry 'cascade'.*defaults\.llm\.temp: not an argument of llm kind llama-cpp"):
        CascadeEngine(entry({**OFFLINE_DEFAULTS, "llm": {"kind": "llama-cpp", "temp": 1}}))  # refused before loading
    refused = {"kind": "openai", "base_url": "http://127.0.0.1:9", "model": "m", "connect_timeout": 1}
    with pytest.raises(EngineError, match="cannot connect to the LLM server"):
        CascadeEngine(entry({**OFFLINE_DEFAULTS, "tts": {"kind": "espeak"}, "llm": refused})).load()


def test_vad_choice_for_the_turn_layer() -> None:
    def ignore(event: Event) -> None:
        pass

    energy = CascadeEngine(entry({"vad": "energy"})).open_session(SessionOptions(), ignore)
    assert not isinstance(energy.detector.vad, SileroVAD)  # type: ignore[attr-defined]
    with pytest.raises(EngineError, match=r"defaults\.vad: Input should be 'silero' or 'energy'"):
        CascadeEngine(entry({"vad": "webrtc"}))
    wideband = entry({}).model_copy(update={"sample_rates": SampleRates(input=48_000, output=22_050)})
    with pytest.raises(EngineError, match="Silero VAD needs sample_rates.input 16000"):
        CascadeEngine(wideband).open_session(SessionOptions(), ignore)
