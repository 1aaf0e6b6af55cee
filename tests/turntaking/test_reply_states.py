"""The speculative reply's phases: LIKELY -> HELD -> COMMITTED -> ENDED, or DROPPED, and nothing else."""

from __future__ import annotations

import time

import numpy as np
import pytest

from speechlm_demo.audio import chunks
from speechlm_demo.engines.base import SessionOptions, TextOut, TurnEnd
from speechlm_demo.turntaking.speculative_reply import NEXT, Phase
from tests.engines_for_tests import Recorder, ScriptedEngine, WordsSettings, entry, silence, tone


class WordsEngine(ScriptedEngine):
    """Reports ``words`` as the user's transcript, then answers."""

    Settings = WordsSettings
    words = "What is the capital of France?"

    def respond(self, turn, history, options):
        yield TextOut(self.words, role="user")
        yield from super().respond(turn, history, options)


def speak(session, audio: np.ndarray) -> None:
    started = time.monotonic()
    for index, piece in enumerate(chunks(audio, 320)):
        time.sleep(max(0.0, started + (index + 1) * 0.02 - time.monotonic()))
        session.push_audio(piece)


def test_only_the_drawn_transitions_exist() -> None:
    assert NEXT[Phase.LIKELY] == {Phase.HELD, Phase.COMMITTED, Phase.DROPPED}
    assert NEXT[Phase.HELD] == {Phase.COMMITTED, Phase.DROPPED}
    assert NEXT[Phase.COMMITTED] == {Phase.ENDED}
    assert not NEXT[Phase.ENDED] and not NEXT[Phase.DROPPED]


@pytest.mark.parametrize("words, phases", [
    ("What is the capital of France?", [Phase.ENDED]),  # committed early by the transcript, then ended
    ("Well...", [Phase.DROPPED, Phase.ENDED]),  # dropped at the pause; the long silence answers afresh
])
def test_a_reply_goes_through_its_phases(words: str, phases: list[Phase]) -> None:
    engine = WordsEngine(entry(endpointing="transcript", end_silence_ms=900, min_commit_silence_ms=100))
    engine.words = words
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    replies = []
    original = session._start_reply

    def remember(*args, **kwargs):
        original(*args, **kwargs)
        replies.append(session._reply)

    session._start_reply = remember
    speak(session, np.concatenate([tone(0.5), silence(1.3)]))
    (end,) = rec.wait_for(TurnEnd)
    session.close()
    assert [reply.phase for reply in replies] == phases
    with pytest.raises(RuntimeError, match="ended -> committed is not a transition"):
        replies[-1]._enter(Phase.COMMITTED)
    assert end.timeline.extra["committed_by"] == ("transcript" if len(phases) == 1 else "silence")
