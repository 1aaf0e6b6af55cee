"""End-of-turn strategies, alone and inside a half-duplex session."""

from __future__ import annotations

import importlib.util
import shutil

import numpy as np
import pytest

from speechlm_demo.engines.base import EngineError, SessionOptions
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.load_once import once_per_process
from speechlm_demo.turntaking.end_of_turn import Action, Evidence, Verdict, strategy_for
from tests.conftest import require
from tests.engines_for_tests import Recorder, echo_turn, entry, silence

DONE, NOT, UNKNOWN, STATEMENT = Verdict.DONE, Verdict.NOT_DONE, Verdict.UNKNOWN, Verdict.STATEMENT


def evidence(transcript: Verdict = UNKNOWN, audio: Verdict = UNKNOWN, *, quiet: bool = True, p: float | None = None) -> Evidence:
    return Evidence(confirmed=True, silence_ms=200.0 if quiet else 50.0, blip_pending=False, min_commit_silence_ms=150.0,
                    transcript=transcript, audio=audio, audio_probability=p)


@pytest.mark.parametrize(
    "name, transcript, audio, quiet, expected",
    [
        ("silence", DONE, DONE, True, Action.WAIT),
        ("transcript", DONE, NOT, True, Action.COMMIT),
        ("transcript", DONE, UNKNOWN, False, Action.WAIT),  # the floor under a commit
        ("transcript", NOT, DONE, True, Action.DROP),
        ("transcript", STATEMENT, UNKNOWN, True, Action.WAIT),  # "I need some advice." may lead into the question
        ("combined", STATEMENT, DONE, True, Action.WAIT),
        ("smart-turn", UNKNOWN, DONE, True, Action.COMMIT),  # no transcript needed
        ("smart-turn", DONE, NOT, True, Action.WAIT),  # the audio holds: never dropped, a long silence uses it
        ("combined", DONE, NOT, True, Action.WAIT),  # "I have a question about space." said as a lead-in
        ("combined", NOT, DONE, True, Action.DROP),  # "I was wondering if" in a falling synthetic voice
        ("combined", UNKNOWN, DONE, True, Action.WAIT),  # waits for the words unless the audio is very sure
        ("combined", DONE, DONE, True, Action.COMMIT),
        ("combined", DONE, DONE, False, Action.WAIT),
    ],
)
def test_each_strategy_decides_from_the_evidence(name: str, transcript: Verdict, audio: Verdict, quiet: bool, expected: Action) -> None:
    assert strategy_for(name).decide(evidence(transcript, audio, quiet=quiet)) is expected


def test_combined_commits_on_very_sure_audio_without_the_words() -> None:
    rule = strategy_for("combined", trust_audio_above=0.9)
    assert rule.decide(evidence(audio=DONE, p=0.95)) is Action.COMMIT
    assert rule.decide(evidence(audio=DONE, p=0.7)) is Action.WAIT
    assert rule.decide(evidence(NOT, DONE, p=0.99)) is Action.DROP


def test_an_unknown_endpointing_value_is_named() -> None:
    with pytest.raises(ValueError, match="smart-turn, combined, not 'prosody'"):
        strategy_for("prosody")
    with pytest.raises(EngineError, match="defaults.endpointing: .*'transcript', 'smart-turn' or 'combined'"):
        EchoEngine(entry("echo", endpointing="prosody"))


def spoken(text: str) -> np.ndarray:
    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)")
    require(None if importlib.util.find_spec("pipecat") else "Smart Turn missing: pip install --no-deps pipecat-ai==1.14.0")
    from speechlm_demo.benchmarks.prompt_sets import speak

    return speak(text)


def test_smart_turn_ends_a_finished_question_long_before_the_silence_rule() -> None:
    audio = np.concatenate([silence(0.3), spoken("What is the capital of France?"), silence(2.5)])
    end, _ = echo_turn(audio, endpointing="smart-turn", end_silence_ms=2000, min_commit_silence_ms=150)
    assert end.timeline.extra["committed_by"] == "smart-turn" and end.timeline.extra["smart_turn_p"] > 0.5
    assert end.timeline.between_ms("user_speech_end", "turn_detected") < 1000


def test_smart_turn_holds_an_unfinished_phrase_until_the_silence_rule() -> None:
    audio = np.concatenate([silence(0.3), spoken("Can you tell me about the"), silence(2.6)])
    end, _ = echo_turn(audio, endpointing="smart-turn", end_silence_ms=2000, min_commit_silence_ms=150)
    assert end.timeline.extra["committed_by"] == "silence" and end.timeline.extra["smart_turn_p"] < 0.5
    assert end.timeline.between_ms("user_speech_end", "turn_detected") >= 1900


def test_loading_an_engine_that_listens_loads_smart_turn_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from speechlm_demo.turntaking import smart_turn

    require(None if importlib.util.find_spec("pipecat") else "Smart Turn missing: pip install --no-deps pipecat-ai==1.14.0")
    monkeypatch.setattr(smart_turn, "_models", once_per_process(smart_turn.SmartTurn))
    EchoEngine(entry("echo", endpointing="silence")).load()
    assert smart_turn._models.loaded() == {}  # the silence rule needs no model
    EchoEngine(entry("echo", endpointing="smart-turn")).load()
    (model,) = smart_turn._models.loaded().values()
    session = EchoEngine(entry("echo", endpointing="smart-turn")).open_session(SessionOptions(), Recorder())
    assert session.smart_turn is model
    session.close()
