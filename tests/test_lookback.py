"""The second hearing without the turn's last moments (``lookback_ms``): finished words whose clipped hearing
dangles wait for the long silence; a clipped hearing that reads finished, fails or hears nothing does not."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np
import pytest
from pydantic import ValidationError

from speechlm_demo.engines.base import EngineError, TextOut
from speechlm_demo.engines.cascade.asr import Heard
from speechlm_demo.engines.cascade.settings import CascadeSettings
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.turntaking import half_duplex
from speechlm_demo.turntaking.detector import AFTER_VOICE_S, PauseDetected, PauseLikely, TurnDetector
from speechlm_demo.turntaking.end_of_turn import Verdict
from speechlm_demo.turntaking.lookback import lookback_verdict, words_verdict
from speechlm_demo.turntaking.voice_activity import EnergyVAD
from tests.engines_for_tests import echo_turn, entry, silence, tone

LISTEN = {"kind": "faster-whisper", "model": "offline", "language": "en"}
RATE = 16_000


class _TwoHearings:
    """A recogniser that hears ``full`` in audio ending in quiet (the turn with its tail) and ``clipped`` in audio
    that ends while still loud (the look-back: the last word cut), each after ``takes_s``."""

    sample_rate = RATE

    def __init__(self, full: str, clipped: str | None, takes_s: float = 0.0) -> None:
        self.full, self.clipped, self.takes_s = full, clipped, takes_s
        self.clipped_heard = threading.Event()

    def hear(self, audio: np.ndarray, cancel: threading.Event | None = None) -> Heard:
        if np.abs(audio[-160:]).max() < 0.01:
            return Heard(self.full)
        time.sleep(self.takes_s)
        self.clipped_heard.set()
        if self.clipped is None:
            raise RuntimeError("look-back recogniser exploded")
        return Heard(self.clipped)


def _turn(recogniser: _TwoHearings, monkeypatch: pytest.MonkeyPatch, **defaults: object) -> tuple:
    roles: list[str] = []

    def shared(config: object, device: str, role: str = "words") -> _TwoHearings:
        roles.append(role)
        return recogniser

    monkeypatch.setattr(half_duplex, "shared_recogniser", shared)
    audio = np.concatenate([silence(0.3), tone(0.8), silence(2.2)])
    settings = {"endpointing": "transcript", "listen_asr": LISTEN, "end_silence_ms": 1600, "lookback_ms": 60} | defaults
    end, rec = echo_turn(audio, **settings)
    assert ("lookback" in roles) == bool(settings["lookback_ms"])  # its own recogniser, not listen_asr's
    return end, rec


@pytest.mark.parametrize("early_pause_db", [0.0, 30.0], ids=["vad-pause", "likely-pause-then-confirmed"])
def test_finished_words_whose_clipped_hearing_dangles_wait_for_the_long_silence(
    early_pause_db: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    recogniser = _TwoHearings("Could you explain what that?", "Could you explain what the")
    end, rec = _turn(recogniser, monkeypatch, early_pause_db=early_pause_db)
    extra = end.timeline.extra
    assert recogniser.clipped_heard.is_set()
    assert extra["committed_by"] == "silence" and extra["judged_complete"] is True and extra["lookback_held"] is True
    assert extra["lookback_dangles"] is True and extra["lookback_words"] == "Could you explain what the"
    assert end.timeline.between_ms("user_speech_end", "turn_detected") >= 1550
    assert [e.text for e in rec.events if isinstance(e, TextOut) and e.role == "user"] == ["Could you explain what that?"]


def test_without_the_look_back_the_same_words_end_the_turn_early(monkeypatch: pytest.MonkeyPatch) -> None:
    end, _ = _turn(_TwoHearings("Could you explain what that?", "Could you explain what the"), monkeypatch, lookback_ms=0)
    assert end.timeline.extra["committed_by"] == "transcript" and "lookback_dangles" not in end.timeline.extra
    assert end.timeline.between_ms("user_speech_end", "turn_detected") < 1500


def test_a_clipped_hearing_that_reads_finished_commits_once_it_is_in(monkeypatch: pytest.MonkeyPatch) -> None:
    recogniser = _TwoHearings("What is the capital of France?", "What is the capital of France?", takes_s=0.45)
    end, _ = _turn(recogniser, monkeypatch)
    extra = end.timeline.extra
    assert extra["committed_by"] == "transcript" and extra["lookback_dangles"] is False and "lookback_held" not in extra
    assert extra["lookback_hear_ms"] >= 440
    assert 440 <= end.timeline.between_ms("user_speech_end", "turn_detected") < 1500  # waited for it, not for the silence


@pytest.mark.parametrize("clipped", [None, ""], ids=["raises", "hears-nothing"])
def test_a_failing_or_empty_clipped_hearing_is_no_veto(
    clipped: str | None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    recogniser = _TwoHearings("What is the capital of France?", clipped)
    with caplog.at_level(logging.ERROR):
        end, _ = _turn(recogniser, monkeypatch)
    assert recogniser.clipped_heard.is_set() and end.timeline.extra["committed_by"] == "transcript"
    assert ("look-back hearing failed" in caplog.text) == (clipped is None)


def test_the_verdicts_combine_so_that_only_finished_words_wait() -> None:
    assert lookback_verdict("Could you explain what the") is Verdict.NOT_DONE
    assert lookback_verdict("How long does it take to?") is Verdict.NOT_DONE
    assert lookback_verdict("What is the boiling point of water?") is Verdict.DONE
    assert lookback_verdict("  ") is Verdict.DONE  # nothing heard: no veto
    assert words_verdict(Verdict.DONE, None) is Verdict.DONE  # not asked
    assert words_verdict(Verdict.DONE, Verdict.UNKNOWN) is Verdict.UNKNOWN  # still out: wait
    assert words_verdict(Verdict.DONE, Verdict.NOT_DONE) is Verdict.UNSURE  # wait and see, never drop
    assert words_verdict(Verdict.DONE, Verdict.DONE) is Verdict.DONE
    for words in (Verdict.NOT_DONE, Verdict.STATEMENT, Verdict.UNSURE, Verdict.UNKNOWN):
        assert words_verdict(words, Verdict.NOT_DONE) is words


@pytest.mark.parametrize("early_pause_db", [0.0, 30.0], ids=["vad-pause", "likely-pause"])
def test_the_clipped_audio_ends_lookback_ms_before_the_voice(early_pause_db: float) -> None:
    detector = TurnDetector(EnergyVAD.for_rate(RATE), half_duplex.HalfDuplexSettings(early_pause_db=early_pause_db))
    audio = np.concatenate([silence(0.3), tone(0.8), silence(0.6)])
    pauses = [d for piece in np.array_split(audio, len(audio) // 320) for d in detector.push(piece)]
    pause = next(d for d in pauses if isinstance(d, (PauseLikely, PauseDetected)))
    assert isinstance(pause, PauseLikely if early_pause_db else PauseDetected)
    audio_start = pause.decided - len(pause.audio) if pause.decided - pause.end < AFTER_VOICE_S * RATE else None
    tone_end = int(1.1 * RATE)  # the voice ends here in the stream; the turn layer's end is at most a window later
    assert 0 <= pause.end - tone_end <= 512
    for trim_ms in (0, 60, 200):
        clipped = pause.trimmed(RATE, trim_ms)
        assert np.array_equal(clipped, pause.audio[: len(clipped)])
        if audio_start is not None:  # the whole turn so far was handed over: the clipped audio ends trim_ms before end
            assert audio_start + len(clipped) == pause.end - int(trim_ms * RATE / 1000)
        loud = np.flatnonzero(np.abs(clipped) > 0.01)
        voice_cut = len(clipped) - 1 - loud[-1]  # quiet samples left after the last loud one
        assert voice_cut <= 16 if trim_ms else voice_cut <= 512  # clipped inside the voice, not after it
    assert pause.trimmed(RATE, 100_000).size == 0


def test_settings_refuse_a_look_back_with_nothing_to_hear_with() -> None:
    with pytest.raises(EngineError, match="lookback_ms: endpointing 'silence' reads no words"):
        EchoEngine(entry("echo", endpointing="silence", lookback_ms=60))
    with pytest.raises(EngineError, match="less than or equal to 500"):
        EchoEngine(entry("echo", endpointing="transcript", listen_asr=LISTEN, lookback_ms=900))
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        CascadeSettings.model_validate({"endpointing": "transcript", "lookback_ms": -5})
    cascade = CascadeSettings.model_validate({"endpointing": "transcript", "lookback_ms": 60, "asr": LISTEN})
    assert cascade.recogniser() == cascade.asr  # the cascade hears again with its own ASR stage's recogniser

    class WordsButNoRecogniser(half_duplex.HalfDuplexSettings):
        engine_reports_words = True  # an engine with its own words and no recogniser the turn layer may use

    assert WordsButNoRecogniser.model_validate({"endpointing": "transcript"}).lookback_ms == 0
    with pytest.raises(ValidationError, match="lookback_ms: the turn layer has no recogniser to hear with"):
        WordsButNoRecogniser.model_validate({"endpointing": "transcript", "lookback_ms": 60})


def test_the_shipped_cascade_looks_back() -> None:
    from speechlm_demo.catalog import load_catalog

    assert load_catalog().get("cascade").defaults["lookback_ms"] == 60


@pytest.mark.slow
def test_a_spoken_question_still_ends_on_its_words_with_the_real_recogniser() -> None:
    import shutil

    from tests.conftest import require

    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)")
    from speechlm_demo.benchmarks.prompt_sets import speak

    listen = LISTEN | {"cpu_threads": 1, "num_workers": 2, "min_window_s": 6, "vocabulary": "english"}
    audio = np.concatenate([silence(0.3), speak("What is the capital of France?"), silence(2.5)])
    end, _ = echo_turn(audio, endpointing="transcript", listen_asr=listen, end_silence_ms=2000, lookback_ms=60)
    extra = end.timeline.extra
    assert extra["committed_by"] == "transcript" and extra["lookback_dangles"] is False
    assert "capital" in extra["lookback_words"].lower()  # the clipped hearing still has the words before the last
    assert end.timeline.between_ms("user_speech_end", "turn_detected") < 1000


def test_bench_counts_the_turns_the_look_back_left_to_the_long_silence() -> None:
    from speechlm_demo.benchmarks.latency import TurnResult, format_summary, report
    from speechlm_demo.hardware import simulated_host

    def turn(name: str, committed_by: str, dangles: bool | None, took: float = 150.0, held: bool = False) -> TurnResult:
        decided: dict[str, object] = {"committed_by": committed_by}
        if dangles is not None:
            decided |= {"lookback_dangles": dangles, "lookback_hear_ms": took, "lookback_words": "w"}
        if held:
            decided["lookback_held"] = True
        return TurnResult(name, 0, "ok", decided=decided)

    # a: finished words the look-back held; c: a statement whose second hearing dangled waits anyway (not counted)
    turns = [turn("a", "silence", True, 100.0, held=True), turn("b", "transcript", False, 200.0), turn("c", "silence", True, 300.0), turn("d", "silence", None)]
    doc = report("cascade", simulated_host("cpu"), turns)
    assert doc["summary"]["lookback_held"] == {"turns": 1, "total": 3} and doc["summary"]["lookback_hear_ms"] == {"p50": 200.0}
    assert "finished words left to the long silence by the look-back: 1/3 turns (its hearing p50 200 ms)" in format_summary(doc)
    plain = report("cascade", simulated_host("cpu"), [turn("d", "silence", None)])
    assert "lookback_held" not in plain["summary"] and "look-back" not in format_summary(plain)


def test_the_user_going_on_while_the_clipped_hearing_is_out_leaves_one_whole_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    recogniser = _TwoHearings("What is the capital?", "What is the capital?", takes_s=0.5)
    monkeypatch.setattr(half_duplex, "shared_recogniser", lambda config, device, role="words": recogniser)
    audio = np.concatenate([silence(0.3), tone(0.8), silence(0.3), tone(0.6), silence(2.0)])
    end, rec = echo_turn(audio, endpointing="transcript", listen_asr=LISTEN, end_silence_ms=1500, lookback_ms=60)
    ends = [e for e in rec.events if type(e).__name__ == "TurnEnd"]
    assert len(ends) == 1 and end.timeline.status == "ok"  # the first pause's reply left no trace
    assert end.timeline.between_ms("user_speech_start", "user_speech_end") > 1500  # the whole turn, both parts


def test_closing_the_session_with_a_clipped_hearing_queued_ends_cleanly(monkeypatch: pytest.MonkeyPatch) -> None:
    from speechlm_demo.audio import chunks
    from speechlm_demo.engines.base import SessionOptions
    from tests.engines_for_tests import Recorder

    recogniser = _TwoHearings("What is the capital?", "What is the capital?", takes_s=0.4)
    monkeypatch.setattr(half_duplex, "shared_recogniser", lambda config, device, role="words": recogniser)
    rec = Recorder()
    engine = EchoEngine(entry("echo", endpointing="transcript", listen_asr=LISTEN, end_silence_ms=1500, lookback_ms=60))
    session = engine.open_session(SessionOptions(), rec)
    for piece in chunks(np.concatenate([silence(0.3), tone(0.8), silence(0.25)]), 320):
        session.push_audio(piece)
    assert session._reply is not None and session._reply.lookback is Verdict.UNKNOWN  # the second hearing is out
    session.close()
    assert recogniser.clipped_heard.wait(2.0)
    time.sleep(0.2)
    assert session._reply.cancelled and not session._reply.committed
    assert [type(e).__name__ for e in rec.events if type(e).__name__ == "TurnEnd"] == []


def test_a_clipped_hearing_slower_than_the_silence_rule_leaves_the_record_as_it_went_out(monkeypatch: pytest.MonkeyPatch) -> None:
    recogniser = _TwoHearings("What is the capital?", "What is the capital?", takes_s=1.2)
    monkeypatch.setattr(half_duplex, "shared_recogniser", lambda config, device, role="words": recogniser)
    audio = np.concatenate([silence(0.3), tone(0.8), silence(1.0)])
    end, _ = echo_turn(audio, endpointing="transcript", listen_asr=LISTEN, end_silence_ms=600, lookback_ms=60)
    assert end.timeline.extra["committed_by"] == "silence"
    assert recogniser.clipped_heard.wait(3.0)
    time.sleep(0.2)
    assert not {"lookback_words", "lookback_dangles", "lookback_hear_ms"} & end.timeline.extra.keys()
