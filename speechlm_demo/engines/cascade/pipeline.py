"""The cascade engine: ASR -> LLM (streamed, in a producer thread) -> sentence chunks -> TTS.

Turn-taking (Silero or energy VAD, see :meth:`CascadeEngine.make_vad`) runs in front of it in
:mod:`speechlm_demo.turntaking`. While TTS speaks
sentence 1, the LLM thread keeps generating sentence 2, so reply audio starts after the first sentence,
not after the whole reply.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...turntaking.half_duplex import HalfDuplexEngine
from ...turntaking.turn_words import hear_turn
from ...turntaking.voice_activity import VoiceActivityModel
from ..base import AudioOut, EngineError, Event, Mark, Progress, SessionOptions, TextOut, UserTurn
from ..history import trim_history
from .asr import ASR, build_asr
from .chunking import SentenceChunker, clean_for_speech
from .llm import LLM, Messages, build_llm
from .settings import CascadeSettings
from .silero import SileroVAD
from .tts import TTS
from .tts_kinds import build_tts

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your words are spoken aloud, so answer in one or two short, "
    "plain sentences, with no lists, no Markdown and no emojis."
)
HISTORY_TURNS = 10
NOTHING_HEARD = "(I did not catch any words. Could you say that again?)"
NO_REPLY = "(the language model gave no answer)"
_POLL_S = 0.05
FIRST_CHUNK_WAIT_S = 3.0
PRODUCER_JOIN_S = 10.0


@dataclass(frozen=True)
class _Failed:
    error: BaseException


_DONE = object()


class CascadeEngine(HalfDuplexEngine):
    """Offline-capable cascade; its stages come from the catalogue entry's ``asr``/``llm``/``tts`` settings."""

    Settings = CascadeSettings
    settings: CascadeSettings
    asr: ASR
    llm: LLM
    tts: TTS

    def _load(self, progress: Progress) -> None:
        """Build and warm up the three stages."""
        started = time.monotonic()
        progress(0.0, "loading speech recognition")
        self.asr = build_asr(self.settings.asr, self.device)
        progress(0.35, "loading language model")
        self.llm = build_llm(self.settings.llm, self.device)
        progress(0.6, "loading voice")
        self.tts = build_tts(self.settings.tts)
        if self.settings.warm_up:
            progress(0.8, "warming up")
            self._warm_up()
        log.info("cascade %s ready in %.1f s", self.id, time.monotonic() - started)
        progress(1.0, "ready")

    def _warm_up(self) -> None:
        """One tiny call per stage, so the first real turn runs at full speed."""
        noise = np.random.default_rng(0).normal(0.0, 0.05, self.asr.sample_rate).astype(np.float32)
        self.asr.transcribe(noise)  # noise, not zeros: the decoder runs too
        stop = threading.Event()
        # With the real system prompt, so llama.cpp keeps its tokens cached for the first real turn.
        warm_up = [{"role": "system", "content": self.system_prompt(SessionOptions())}, {"role": "user", "content": "Hi"}]
        for _piece in self.llm.stream(warm_up, stop):
            stop.set()
        for _chunk in self.tts.synthesize("Hi."):
            pass

    def make_vad(self) -> VoiceActivityModel:
        """Silero VAD unless the entry sets ``vad: energy``."""
        if self.settings.vad == "energy":
            return super().make_vad()
        if self.entry.sample_rates.input != SileroVAD.sample_rate:
            raise EngineError(f"Silero VAD needs sample_rates.input {SileroVAD.sample_rate} in the catalogue entry")
        return SileroVAD()

    def system_prompt(self, options: SessionOptions) -> str:
        """The session's prompt, else the catalogue's, else a short spoken-style default."""
        return options.system_prompt or self.settings.system_prompt or DEFAULT_SYSTEM_PROMPT

    def respond(self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions) -> Iterator[Event]:
        """Transcribe the turn, stream the LLM's reply and speak it sentence by sentence."""
        yield Mark("asr_start")
        heard = hear_turn(self.asr, turn.audio, turn.sample_rate, turn.cancel)
        user_text = heard.text
        yield Mark("asr_final")
        if turn.cancel.is_set():
            return
        if not user_text:
            yield TextOut(NOTHING_HEARD, role="agent")
            return
        yield TextOut(user_text, role="user", confidence=heard.confidence)
        messages: Messages = [
            {"role": "system", "content": self.system_prompt(options)},
            *history,
            {"role": "user", "content": user_text},
        ]
        spoken: list[str] = []
        try:
            yield from self._speak(messages, turn.cancel, options, spoken)
        finally:
            history.append({"role": "user", "content": user_text})
            if spoken:
                history.append({"role": "assistant", "content": " ".join(spoken)})
            trim_history(history, HISTORY_TURNS)

    def _speak(
        self, messages: Messages, cancel: threading.Event, options: SessionOptions, spoken: list[str]
    ) -> Iterator[Event]:
        """Consume the LLM producer's sentences, synthesising each while the next is generated."""
        items: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        first_spoken = threading.Event()
        producer = threading.Thread(
            target=self._produce, args=(messages, options, items, stop, first_spoken), name="cascade-llm", daemon=True
        )
        producer.start()
        try:
            while True:
                if cancel.is_set():
                    return
                try:
                    item = items.get(timeout=_POLL_S)
                except queue.Empty:
                    continue
                if item is _DONE:
                    break
                if isinstance(item, _Failed):
                    raise item.error
                if isinstance(item, Mark):
                    yield item
                    continue
                spoken.append(item)
                yield TextOut(item, role="agent")
                for pcm in self.tts.synthesize(clean_for_speech(item), cancel):
                    if cancel.is_set():
                        return
                    first_spoken.set()
                    yield AudioOut(pcm, self.tts.sample_rate)
                first_spoken.set()
            if not spoken:
                yield TextOut(NO_REPLY, role="agent")
        finally:
            stop.set()
            first_spoken.set()
            producer.join(PRODUCER_JOIN_S)  # the reply's work ends with it (a stopped LLM ends within a token)

    def _produce(
        self,
        messages: Messages,
        options: SessionOptions,
        items: queue.Queue[Any],
        stop: threading.Event,
        first_spoken: threading.Event,
    ) -> None:
        """LLM thread: put ``llm_first_token``/``llm_first_sentence`` marks and speakable chunks on ``items``.

        The first chunk may end at a comma after ``first_chunk_words`` words, or before a joining word after
        one more (see :class:`SentenceChunker`). After it, the thread waits until that chunk is synthesised:
        on a 2-core CPU the LLM and the TTS would otherwise share the cores exactly when the first reply
        audio is due.
        """
        words = self.settings.first_chunk_words
        chunker = SentenceChunker(first_clause_words=words, first_max_words=words + 1)
        first_piece = True
        first_chunk = True
        try:
            for piece in self.llm.stream(messages, stop, temperature=options.temperature, seed=options.seed):
                if first_piece:
                    items.put(Mark("llm_first_token"))
                    first_piece = False
                for chunk in chunker.feed(piece):
                    if first_chunk:
                        items.put(Mark("llm_first_sentence"))
                        items.put(chunk)
                        first_chunk = False
                        first_spoken.wait(FIRST_CHUNK_WAIT_S)
                    else:
                        items.put(chunk)
            rest = chunker.flush()
            if rest and not stop.is_set():
                if first_chunk:
                    items.put(Mark("llm_first_sentence"))
                items.put(rest)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            items.put(_Failed(exc))
        finally:
            items.put(_DONE)
