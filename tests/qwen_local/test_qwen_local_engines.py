"""Qwen2.5-Omni and Qwen2-Audio in process, on tiny random-weight checkpoints saved to a temporary directory.

Each engine is built from its real catalogue entry (class path and defaults from configs/engines.yaml) with
``defaults.model`` pointing at the saved directory, the way a user points it at a local copy, and answers
turns through ``open_session`` (the half-duplex turn layer) from 20 ms audio frames.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from speechlm_demo.audio import SILENT_DBFS, rms_dbfs
from speechlm_demo.catalog import EngineEntry, load_catalog
from speechlm_demo.engines.base import AudioOut, EngineError, SessionOptions, TextOut, TurnEnd
from speechlm_demo.engines.registry import engine_class
from speechlm_demo.measure.observer import TurnObserver
from speechlm_demo.measure.record import TurnRecord
from tests.engines_for_tests import Recorder, silence, tone

pytestmark = pytest.mark.slow

RATE = 16_000
TURN_ORDER = ("user_speech_start", "user_speech_end", "reply_started", "llm_first_token", "first_audio_out", "last_audio_out")
TINY_SETTINGS = {"dtype": "float32", "max_new_tokens": 8, "temperature": 0.0, "end_silence_ms": 400, "warm_up": False}


def catalogue_entry(engine_id: str, **overrides: Any) -> EngineEntry:
    """The shipped entry with ``defaults`` changed as a user would change them."""
    entry = load_catalog().get(engine_id)
    return entry.model_copy(update={"defaults": {**entry.defaults, **overrides}})


def load(engine_id: str, model_dir: Path, **overrides: Any) -> Any:
    entry = catalogue_entry(engine_id, model=str(model_dir), **{**TINY_SETTINGS, **overrides})
    engine = engine_class(entry.engine_class)(entry, "cpu")
    engine.load()
    return engine


def speak_turns(
    engine: Any, options: SessionOptions | None = None, turns: int = 1, timeout: float = 180
) -> tuple[Recorder, list[TurnRecord]]:
    """Push ``turns`` one-second tones, each followed by silence, in 20 ms frames; wait for every turn's end.
    Events go through the one observer first (turn records, audible first/last sample), then to a recorder."""
    recorder = Recorder()
    observer = TurnObserver.for_engine(engine)

    def emit(event: Any) -> None:
        observer.observe(event)
        recorder(event)

    session = engine.open_session(options or SessionOptions(), emit)
    frame = RATE // 50
    try:
        for index in range(turns):
            audio = np.concatenate([silence(0.3), tone(1.0), silence(0.8)])
            for start in range(0, len(audio), frame):
                session.push_audio(audio[start : start + frame])
            recorder.wait_for(TurnEnd, index + 1, timeout=timeout)
    finally:
        session.close()
    return recorder, observer.records


def assert_marks_in_order(timeline: Any, names: tuple[str, ...]) -> None:
    times = [timeline.marks[name] for name in names]
    assert times == sorted(times), dict(zip(names, times))


def test_omni_streams_the_thinker_text_then_speaks_at_24_khz(tiny_omni_dir: Path) -> None:
    engine = load("qwen2.5-omni-3b", tiny_omni_dir, talker_max_new_tokens=40)
    assert engine.voices() == ["Chelsie", "Ethan"]
    recorder, records = speak_turns(engine, SessionOptions(voice="Ethan", seed=1), turns=2)

    assert [record.status for record in records] == ["ok", "ok"], [record.detail for record in records]
    words = [e.text for e in recorder.of(TextOut) if e.role == "agent"]
    audio = recorder.of(AudioOut)
    assert words and all(word.strip() for word in words)
    assert {a.sample_rate for a in audio} == {24_000}
    assert rms_dbfs(np.concatenate([a.pcm for a in audio])) > SILENT_DBFS
    events = recorder.events
    first_text = next(i for i, e in enumerate(events) if isinstance(e, TextOut))
    first_audio = next(i for i, e in enumerate(events) if isinstance(e, AudioOut))
    assert first_text < first_audio  # the text streamed before the (whole-reply) audio
    for record in records:
        assert_marks_in_order(record.timeline, TURN_ORDER)
        assert record.reply_text


def test_omni_second_turn_hears_the_first(tiny_omni_dir: Path) -> None:
    engine = load("qwen2.5-omni-3b", tiny_omni_dir, talker_max_new_tokens=24)
    history: list[dict[str, Any]] = []
    first = engine._inputs(tone(1.0), history, SessionOptions())
    history += [{"role": "user", "audio": tone(1.0)}, {"role": "assistant", "content": "Paris."}]
    second = engine._inputs(tone(0.5), history, SessionOptions())
    audio_id = engine.loaded_model.model.config.thinker_config.audio_token_index
    assert second["input_features"].shape[0] == 2 and first["input_features"].shape[0] == 1
    assert int((second["input_ids"] == audio_id).sum()) > int((first["input_ids"] == audio_id).sum())
    text = engine.loaded_model.tokenizer.decode(second["input_ids"][0])
    assert "You are Qwen, a virtual human" in text and "Paris." in text


def test_omni_voice_comes_from_the_session_else_the_row(tiny_omni_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    engine = load("qwen2.5-omni-3b", tiny_omni_dir, voice="Ethan")
    assert engine.voice_for(SessionOptions(voice="chelsie")) == "Chelsie"
    assert engine.voice_for(SessionOptions()) == "Ethan"
    with caplog.at_level("WARNING"):
        assert engine.voice_for(SessionOptions(voice="Aiden")) == "Ethan"  # a Qwen3-Omni speaker: not here
    assert "'Aiden' is not in" in caplog.text
    with pytest.raises(EngineError, match="voice 'Nobody' is not in .*Chelsie, Ethan"):
        load("qwen2.5-omni-3b", tiny_omni_dir, voice="Nobody")


def assert_spoken(recorder: Recorder, record: TurnRecord, rate: int) -> list[str]:
    """The turn went well, its text came in chunks and its audio at ``rate`` is not silent; the chunks."""
    assert record.status == "ok", record.detail
    chunks = [e.text for e in recorder.of(TextOut) if e.role == "agent"]
    audio = recorder.of(AudioOut)
    assert chunks and audio and {a.sample_rate for a in audio} == {rate}
    assert rms_dbfs(np.concatenate([a.pcm for a in audio])) > SILENT_DBFS
    return chunks


def test_qwen2_audio_text_is_spoken_by_the_cascade_tts(tiny_qwen2_audio_dir: Path) -> None:
    engine = load("qwen2-audio-7b", tiny_qwen2_audio_dir, max_new_tokens=24, warm_up=True)
    recorder, (record,) = speak_turns(engine, SessionOptions(seed=0))

    chunks = assert_spoken(recorder, record, 22_050)
    assert_marks_in_order(record.timeline, ("reply_started", "llm_first_token", "llm_first_sentence", "first_audio_out"))
    assert record.reply_text == " ".join(chunks)


def test_qwen2_audio_can_speak_through_a_speech_server(tiny_qwen2_audio_dir: Path) -> None:
    """``tts.kind: openai``: each chunk is one ``POST /v1/audio/speech`` (the fake vLLM server of ``tests/qwen``)."""
    from tests.qwen.fake_vllm_omni import FakeServer, FakeState

    with FakeServer(FakeState(profile="vllm")) as server:
        voice = {"kind": "openai", "model": "tts-1", "voice": "alloy", "base_url": f"{server.url}/v1"}
        engine = load("qwen2-audio-7b", tiny_qwen2_audio_dir, max_new_tokens=24, tts=voice)
        recorder, (record,) = speak_turns(engine, SessionOptions(seed=0))
    chunks = assert_spoken(recorder, record, 24_000)
    spoken = [r["input"] for r in server.state.requests if "input" in r]
    assert len(spoken) == len(chunks) and all(spoken) and all(r["voice"] == "alloy" for r in server.state.requests)


def test_qwen2_audio_prompt_numbers_the_audios_and_keeps_the_replies(tiny_qwen2_audio_dir: Path) -> None:
    engine = load("qwen2-audio-7b", tiny_qwen2_audio_dir)
    history = [{"role": "user", "audio": tone(1.0)}, {"role": "assistant", "content": "Hello there."}]
    inputs = engine._inputs(tone(0.5), history, SessionOptions(system_prompt="Be brief."))
    text = engine.loaded_model.tokenizer.decode(inputs["input_ids"][0])
    assert text.startswith("<|im_start|>system\nBe brief.<|im_end|>")
    assert text.index("Audio 1: <|audio_bos|>") < text.index("Hello there.") < text.index("Audio 2: <|audio_bos|>")
    assert text.endswith("<|im_start|>assistant\n")
    assert inputs["input_features"].shape[0] == inputs["feature_attention_mask"].shape[0] == 2


def test_cancel_stops_generation_at_the_next_token(tiny_qwen2_audio_dir: Path) -> None:
    engine = load("qwen2-audio-7b", tiny_qwen2_audio_dir)
    inputs = engine._inputs(tone(0.5), [], SessionOptions())
    cancel = threading.Event()
    run = engine._start(inputs, SessionOptions(), cancel, max_new_tokens=400)
    pieces = []
    for piece in run.text():
        pieces.append(piece)
        cancel.set()
    new_tokens = run.result().shape[1] - inputs["input_ids"].shape[1]
    assert pieces and new_tokens < 50  # stopped within a few tokens of the cancel, not after 400


def test_a_turn_cancelled_before_it_starts_generates_nothing(tiny_qwen2_audio_dir: Path) -> None:
    engine = load("qwen2-audio-7b", tiny_qwen2_audio_dir)
    cancel = threading.Event()
    cancel.set()
    run = engine._start(engine._inputs(tone(0.5), [], SessionOptions()), SessionOptions(), cancel)
    assert list(run.text()) == [] and run.result() is None


def test_a_turn_cancelled_while_another_generation_holds_the_model_ends_at_once(tiny_qwen2_audio_dir: Path) -> None:
    """Another session's generation (tens of seconds on a GPU for Omni) holds the engine's lock: a cancelled reply
    waiting for it ends without waiting for that generation, and generates nothing."""
    engine = load("qwen2-audio-7b", tiny_qwen2_audio_dir)
    engine._busy.acquire()  # another session's generation
    try:
        cancel = threading.Event()
        run = engine._start(engine._inputs(tone(0.5), [], SessionOptions()), SessionOptions(), cancel)
        threading.Timer(0.2, cancel.set).start()
        got: list[Any] = []
        reader = threading.Thread(target=lambda: got.extend([list(run.text()), run.result()]), daemon=True)
        reader.start()
        reader.join(1.5)
        assert not reader.is_alive(), "the cancelled reply still waits for the other generation"
        assert got == [[], None]
    finally:
        engine._busy.release()
    after = engine._start(engine._inputs(tone(0.5), [], SessionOptions()), SessionOptions(), threading.Event(), max_new_tokens=4)
    list(after.text())
    assert after.result() is not None  # it generated: the lock was not left taken


@pytest.mark.parametrize("engine_id", ["qwen2.5-omni-3b", "qwen2-audio-7b"])
def test_a_bad_model_directory_is_a_clear_engine_error(engine_id: str, tmp_path: Path, tiny_omni_dir: Path,
                                                       tiny_qwen2_audio_dir: Path) -> None:
    other = tiny_qwen2_audio_dir if engine_id.startswith("qwen2.5") else tiny_omni_dir
    cases = {
        tmp_path / "missing": "does not exist",
        tmp_path: "config.json is missing",
        other: "this engine loads",
    }
    for directory, message in cases.items():
        with pytest.raises(EngineError, match=message):
            load(engine_id, directory)
    own = tiny_omni_dir if engine_id.startswith("qwen2.5") else tiny_qwen2_audio_dir
    no_features = tmp_path / "no-features"
    shutil.copytree(own, no_features)
    (no_features / "preprocessor_config.json").unlink()
    with pytest.raises(EngineError, match="lacks preprocessor_config.json or processor_config.json"):
        load(engine_id, no_features)
    damaged = tmp_path / "damaged"
    shutil.copytree(own, damaged)
    weights = damaged / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    with pytest.raises(EngineError, match="could not load"):
        load(engine_id, damaged)
    if engine_id.startswith("qwen2.5"):
        no_speakers = tmp_path / "no-speakers"
        shutil.copytree(tiny_omni_dir, no_speakers)
        (no_speakers / "spk_dict.pt").unlink()
        with pytest.raises(EngineError, match="spk_dict.pt"):
            load(engine_id, no_speakers)


def test_the_engines_emit_only_standard_marks(tiny_omni_dir: Path) -> None:
    from speechlm_demo.timeline import STANDARD_MARKS

    engine = load("qwen2.5-omni-3b", tiny_omni_dir, talker_max_new_tokens=16)
    _recorder, (record,) = speak_turns(engine)
    assert set(record.timeline.marks) <= set(STANDARD_MARKS)


def test_compare_runs_omni_against_qwen2_audio(tiny_omni_dir: Path, tiny_qwen2_audio_dir: Path) -> None:
    from speechlm_demo.compare import compare

    omni = load("qwen2.5-omni-3b", tiny_omni_dir, talker_max_new_tokens=24)
    qwen2_audio = load("qwen2-audio-7b", tiny_qwen2_audio_dir)
    turn = np.concatenate([silence(0.2), tone(1.0), silence(0.1)])
    result = compare(omni, qwen2_audio, turn, RATE, options=SessionOptions(seed=0), timeout_s=120, tail_s=1.0)
    for side, rate in ((result.a, 24_000), (result.b, 22_050)):
        assert side.ok, side.message
        assert side.reply_text and side.sample_rate == rate and rms_dbfs(side.audio) > SILENT_DBFS
        assert side.latency_ms is not None and side.latency_ms > 0
