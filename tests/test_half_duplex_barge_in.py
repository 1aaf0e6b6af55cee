"""Barge-in is atomic: once the ``Interrupt`` (the playback flush) is out, nothing of the interrupted reply follows."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np

from speechlm_demo.engines.base import AudioOut, Event, Interrupt, SessionOptions, TurnEnd, UserTurn
from tests.engines_for_tests import Recorder, ScriptedEngine, entry, silence, tone


class GatedStreamer(ScriptedEngine):
    """Streams a long chunk at once, then one more chunk as soon as ``gate`` opens (a TTS still streaming)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate = threading.Event()

    def respond(self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions) -> Iterator[Event]:
        yield AudioOut(tone(2.0, freq=440.0), 16_000)  # 2 s "playing": the reply is busy when the user speaks
        self.gate.wait(5)
        yield AudioOut(tone(0.02, freq=440.0), 16_000)


def test_no_audio_of_the_interrupted_reply_follows_its_interrupt() -> None:
    """Force the race: the engine yields its next chunk exactly while the Interrupt is being emitted."""
    engine = GatedStreamer(entry())
    rec = Recorder()

    def emit(event: Event) -> None:
        rec(event)
        if isinstance(event, Interrupt):
            engine.gate.set()  # the worker yields its next chunk now, while the flush is under way
            try:
                rec.wait_for(AudioOut, 2, timeout=1.0)  # forwarded at once unless forwarding waits for the barge-in
            except TimeoutError:
                pass

    def talk() -> None:
        session = engine.open_session(SessionOptions(), emit)
        for piece in np.split(np.concatenate([tone(0.5), silence(0.6)]), 55):
            session.push_audio(piece)
        rec.wait_for(AudioOut)
        for piece in np.split(tone(0.3), 15):  # the user talks over the reply
            session.push_audio(piece)
        rec.wait_for(TurnEnd)
        session.close()

    worker = threading.Thread(target=talk, daemon=True)
    worker.start()
    worker.join(20)
    assert not worker.is_alive()
    kinds = [type(e).__name__ for e in rec.events]
    at = kinds.index("Interrupt")
    assert "AudioOut" not in kinds[at + 1 :], kinds
    assert rec.of(TurnEnd)[0].timeline.status == "interrupted"
