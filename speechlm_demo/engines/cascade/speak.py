"""Speak a streamed text reply: text pieces -> speakable chunks -> the cascade's TTS stage.

For engines whose model hears speech but answers in text (Qwen2-Audio in process, speech-in/text-out
servers): they hand their token stream here and get the same chunking and voice as the cascade. The
text source keeps generating in its own thread (a ``TextIteratorStreamer``, an HTTP stream) while a chunk
is synthesised, so reply audio starts after the first chunk, not after the whole reply.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator

from ..base import AudioOut, Event, Mark, TextOut
from .chunking import SentenceChunker, clean_for_speech
from .tts import TTS


def speak_text_stream(
    pieces: Iterable[str],
    tts: TTS,
    cancel: threading.Event,
    *,
    first_chunk_words: int = 4,
    spoken: list[str] | None = None,
) -> Iterator[Event]:
    """Yield ``llm_first_token``/``llm_first_sentence`` marks, each chunk as agent text, then its audio.

    The first chunk may end at a comma after ``first_chunk_words`` words or before a joining word after one
    more (see :class:`SentenceChunker`). Chunks already spoken are appended to ``spoken`` (for the history);
    stops quietly once ``cancel`` is set.
    """
    chunker = SentenceChunker(first_clause_words=first_chunk_words, first_max_words=first_chunk_words + 1)
    said = spoken if spoken is not None else []
    first_piece = True

    def say(chunk: str) -> Iterator[Event]:
        if not said:
            yield Mark("llm_first_sentence")
        said.append(chunk)
        yield TextOut(chunk, role="agent")
        for pcm in tts.synthesize(clean_for_speech(chunk), cancel):
            if cancel.is_set():
                return
            yield AudioOut(pcm, tts.sample_rate)

    for piece in pieces:
        if cancel.is_set():
            return
        if first_piece and piece.strip():
            first_piece = False
            yield Mark("llm_first_token")
        for chunk in chunker.feed(piece):
            yield from say(chunk)
            if cancel.is_set():
                return
    rest = chunker.flush()
    if rest and not cancel.is_set():
        yield from say(rest)
