"""The turn layer's own recogniser (``listen_asr``): the words rule for an engine that reports no words."""

from __future__ import annotations

import logging
import shutil
import threading
import time

import numpy as np
import pytest
from pydantic import ValidationError

from speechlm_demo.audio import chunks
from speechlm_demo.catalog import load_catalog
from speechlm_demo.engines.base import EngineError, SessionOptions, TextOut, TurnEnd
from speechlm_demo.engines.cascade.asr import Heard
from speechlm_demo.engines.cascade.settings import CascadeSettings
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.turntaking import half_duplex, turn_words
from tests.conftest import require
from tests.engines_for_tests import Recorder, ScriptedEngine, echo_turn, entry, silence, tone

LISTEN = {"kind": "faster-whisper", "model": "offline", "language": "en", "cpu_threads": 1, "num_workers": 2,
          "min_window_s": 6, "vocabulary": "english"}


def spoken(text: str) -> np.ndarray:
    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)")
    from speechlm_demo.benchmarks.prompt_sets import speak

    return speak(text)


def user_lines(rec: Recorder) -> list[str]:
    return [e.text for e in rec.events if isinstance(e, TextOut) and e.role == "user"]


@pytest.mark.slow
def test_a_spoken_question_ends_on_the_words_the_turn_layer_hears_long_before_the_silence_rule() -> None:
    audio = np.concatenate([silence(0.3), spoken("What is the capital of France?"), silence(2.5)])
    end, rec = echo_turn(audio, endpointing="transcript", listen_asr=LISTEN, end_silence_ms=2000)
    marks = end.timeline.marks
    assert end.timeline.extra["committed_by"] == "transcript" and end.timeline.extra["judged_complete"] is True
    assert end.timeline.between_ms("user_speech_end", "turn_detected") < 1000  # not the 2 s of silence
    assert marks["user_speech_end"] <= marks["asr_start"] < marks["asr_final"] <= marks["turn_detected"]
    (line,) = user_lines(rec)
    assert "capital" in line.lower() and "france" in line.lower()
    texts = [e for e in rec.events if isinstance(e, TextOut)]
    assert texts[0].role == "user" and texts[1].role == "agent"  # the user's line first, then the reply's


@pytest.mark.slow
def test_words_that_dangle_hold_the_turn_until_the_silence_rule() -> None:
    audio = np.concatenate([silence(0.3), spoken("Can you tell me about the"), silence(2.6)])
    end, rec = echo_turn(audio, endpointing="transcript", listen_asr=LISTEN, end_silence_ms=2000)
    assert end.timeline.extra["committed_by"] == "silence"  # the reply the words dropped, started again by it
    assert end.timeline.between_ms("user_speech_end", "turn_detected") >= 1900
    (line,) = user_lines(rec)  # the dropped reply's words went with it; the committed one's came before its end
    assert "tell me about" in line.lower()
    assert rec.events.index(next(e for e in rec.events if isinstance(e, TextOut) and e.role == "user")) < rec.events.index(end)


class _Broken:
    sample_rate = 16_000

    def __init__(self, heard: Heard | None, takes_s: float = 0.0) -> None:
        self.heard = heard
        self.takes_s = takes_s
        self.calls = threading.Event()

    def hear(self, audio: np.ndarray, cancel: threading.Event | None = None) -> Heard:
        self.calls.set()
        time.sleep(self.takes_s)
        if self.heard is None:
            raise RuntimeError("recogniser exploded")
        return self.heard


@pytest.mark.parametrize("heard", [None, Heard("")], ids=["raises", "hears-nothing"])
def test_a_recogniser_that_fails_or_hears_nothing_leaves_the_turn_to_the_silence_rule(
    heard: Heard | None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    recogniser = _Broken(heard)
    monkeypatch.setattr(half_duplex, "shared_recogniser", lambda config, device: recogniser)
    audio = np.concatenate([silence(0.3), tone(0.8), silence(1.5)])
    with caplog.at_level(logging.ERROR):
        end, rec = echo_turn(audio, endpointing="transcript", listen_asr=LISTEN, end_silence_ms=900)
    assert recogniser.calls.is_set() and end.timeline.status == "ok"
    assert end.timeline.extra["committed_by"] == "silence" and "judged_complete" not in end.timeline.extra
    assert user_lines(rec) == []  # nothing heard is no line (and not a dropped reply)
    assert ("recogniser failed" in caplog.text) == (heard is None)


def test_settings_name_what_is_missing_or_wrong() -> None:
    with pytest.raises(EngineError, match="reads the user's words and this engine reports none: add listen_asr"):
        EchoEngine(entry("echo", endpointing="transcript"))
    with pytest.raises(EngineError, match="reads the user's words and this engine reports none"):
        EchoEngine(entry("echo", endpointing="combined"))
    with pytest.raises(EngineError, match="listen_asr: endpointing 'silence' reads no words"):
        EchoEngine(entry("echo", endpointing="silence", listen_asr=LISTEN))
    with pytest.raises(EngineError, match="unknown asr kind 'vosk'"):
        EchoEngine(entry("echo", endpointing="transcript", listen_asr={"kind": "vosk"}))
    with pytest.raises(EngineError, match=r"defaults\.listen_asr\.beam: not an argument of asr kind faster-whisper"):
        EchoEngine(entry("echo", endpointing="transcript", listen_asr={"kind": "faster-whisper", "beam": 3}))
    with pytest.raises(ValidationError, match="reports the user's words itself"):
        CascadeSettings.model_validate({"endpointing": "transcript", "listen_asr": LISTEN})
    row = load_catalog().get("echo-transcript")  # the shipped diagnostic row loads
    assert row.defaults["listen_asr"] == LISTEN and row.defaults["endpointing"] == "transcript"


def test_the_recogniser_runs_on_cuda_only_where_ctranslate2_sees_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import ctranslate2

    assert turn_words.listen_device("cpu") == "cpu" and turn_words.listen_device("mps") == "cpu"
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 0)  # a ROCm host: torch says cuda, CTranslate2 has none
    assert turn_words.listen_device("cuda:0") == "cpu"
    monkeypatch.setattr(ctranslate2, "get_cuda_device_count", lambda: 2)
    assert turn_words.listen_device("cuda:1") == "cuda:1"


class _ReportsWordsToo(ScriptedEngine):
    """An engine without words of its own that still reports some, as a server row answered by its fallback cascade."""

    def respond(self, turn, history, options):
        yield TextOut("what the fallback heard", role="user")
        yield from super().respond(turn, history, options)


def test_with_listen_asr_the_turn_layers_words_are_the_only_user_line(monkeypatch: pytest.MonkeyPatch) -> None:
    recogniser = _Broken(Heard("What is the capital of France?", 0.9), takes_s=0.1)
    monkeypatch.setattr(half_duplex, "shared_recogniser", lambda config, device: recogniser)
    session = _ReportsWordsToo(entry(endpointing="transcript", listen_asr=LISTEN, end_silence_ms=3000)).open_session(
        SessionOptions(), rec := Recorder()
    )
    for piece in chunks(np.concatenate([silence(0.3), tone(0.8), silence(0.8)]), 320):
        session.push_audio(piece)
        time.sleep(0.004)
    (end,) = rec.wait_for(TurnEnd)
    session.close()
    assert user_lines(rec) == ["What is the capital of France?"]
    assert end.timeline.extra["committed_by"] == "transcript"  # judged from the turn layer's words, not the 3 s silence
    assert end.timeline.between_ms("asr_start", "asr_final") >= 90  # the recogniser's own marks, not the engine's


def test_a_reply_interrupted_while_its_words_are_heard_ends_at_once_as_interrupted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The turn's end waits for the turn layer's words only while the reply plays on: a barge-in ends it at
    once, and the generation finishing later does not turn it into an "ok" turn."""
    recogniser = _Broken(Heard("I see.", 0.9), takes_s=2.0)  # a statement: the long silence commits it
    monkeypatch.setattr(half_duplex, "shared_recogniser", lambda config, device: recogniser)
    engine = ScriptedEngine(entry(endpointing="transcript", listen_asr=LISTEN, end_silence_ms=400, min_commit_silence_ms=100))
    engine.chunks, engine.delay_s = 20, 0.05  # a reply that plays for a while
    session = engine.open_session(SessionOptions(), rec := Recorder())
    started = time.monotonic()
    for index, piece in enumerate(chunks(np.concatenate([silence(0.3), tone(0.6), silence(0.8), tone(0.4)]), 320)):
        time.sleep(max(0.0, started + index * 0.02 - time.monotonic()))
        session.push_audio(piece)  # the last 0.4 s of tone talks over the reply the silence rule committed
    (end,) = rec.wait_for(TurnEnd, timeout=5.0)
    ended_after_s = time.monotonic() - started
    session.close()
    assert end.timeline.status == "interrupted" and end.timeline.extra["committed_by"] == "silence"
    assert ended_after_s < 2.0 + 0.3 + 0.6 + 0.8  # before the recogniser (2 s from the pause) could answer
