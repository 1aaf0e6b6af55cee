"""Qwen2.5-Omni / Qwen3-Omni served by vLLM-Omni: the user's turn in, the model's own text and voice out.

``transport: chat`` posts the turn (an ``audio_url`` data URL) with the conversation so far to
``/v1/chat/completions`` and plays each audio chunk as it arrives: with Qwen2.5-Omni's default deployment
(``async_chunk: false``) the whole reply's audio comes in one chunk after the text; Qwen3-Omni streams audio
chunks while the text is still coming. ``transport: realtime`` uses the ``/v1/realtime`` websocket
(Qwen3-Omni; no history, no system prompt, no voice choice there).

Marks: ``request_sent``, ``first_text`` (first text from the server) and ``first_audio_in`` (first audio
chunk received); the turn layer adds ``first_audio_out`` as the audio leaves.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Generator, Iterator
from typing import Any, ClassVar, Literal

from pydantic import Field

from ...audio import resample, to_mono_float32
from ...turntaking.half_duplex import HalfDuplexEngine
from ..base import AudioOut, EngineError, EngineSettings, Event, Mark, Progress, SessionOptions, TextOut, UserTurn
from ..cascade.chunking import SentenceChunker
from ..history import trim_history
from ..openai_http import ChatHTTP
from ..qwen_local.prompt import QWEN_SYSTEM_PROMPT
from ..remote_settings import OpenAIServerSettings
from .client import AudioPiece, OmniChatClient, TextPiece, audio_url_part
from .realtime import INPUT_RATE, RealtimeClient

log = logging.getLogger(__name__)


class VllmOmniSettings(OpenAIServerSettings):
    """Settings of a vLLM-Omni engine (catalogue ``defaults``)."""

    url_env: str = "VLLM_OMNI_URL"
    model: str = "Qwen/Qwen2.5-Omni-7B"
    transport: Literal["chat", "realtime"] = "chat"
    stream: bool = Field(True, description="streamed SSE (audio played as it arrives) or one JSON reply")
    speaker: str | None = Field(None, description="default voice, e.g. Chelsie or Ethan (Qwen2.5-Omni)")
    voices: list[str] = Field(default_factory=list, description="voices a user may pick (session option)")
    require_audio: bool = Field(True, description="a reply without audio fails the turn")
    keep_connection_s: float = Field(240.0, ge=0, description="realtime: an idle connection is kept this long for the next turn")


def system_prompt(options: SessionOptions) -> str:
    """Qwen's own prompt first (needed for speech), the user's prompt after it."""
    extra = (options.system_prompt or "").strip()
    return f"{QWEN_SYSTEM_PROMPT}\n\n{extra}" if extra else QWEN_SYSTEM_PROMPT


class VllmOmniEngine(HalfDuplexEngine):
    """A client of a vLLM-Omni server; the URL comes from ``$VLLM_OMNI_URL`` (``url_env``)."""

    Settings: ClassVar[type[EngineSettings]] = VllmOmniSettings
    settings: VllmOmniSettings
    http: ChatHTTP | None = None  # set by load
    realtime: RealtimeClient | None = None

    def _load(self, progress: Progress) -> None:
        s = self.settings
        self.http = s.chat_http("the vLLM-Omni server")
        base_url = self.http.base_url
        self.http.check_model(s.model, s.url_env)
        self.chat = OmniChatClient(self.http, s.model)
        self.realtime = RealtimeClient(
            base_url, s.model, connect_timeout=s.connect_timeout_s, read_timeout=s.read_timeout_s, keep_idle_s=s.keep_connection_s
        )
        log.info("%s: vLLM-Omni at %s, model %s, %s transport", self.id, base_url, s.model, s.transport)

    def voice(self, options: SessionOptions) -> str | None:
        """The session's voice if it is one of this engine's, else the default speaker."""
        chosen = (options.voice or "").strip()
        if chosen and not self.settings.voices:
            return chosen
        known = {v.lower(): v for v in self.settings.voices}
        return known.get(chosen.lower(), self.settings.speaker)

    def respond(self, turn: UserTurn, history: list[dict[str, Any]], options: SessionOptions) -> Iterator[Event]:
        """Send the turn; yield the reply's text (sentence by sentence) and audio chunks as they arrive."""
        audio = to_mono_float32(turn.audio)
        if not len(audio):
            raise EngineError("the turn has no audio to send")
        s = self.settings
        if s.transport == "realtime":
            pieces = self.realtime.reply(resample(audio, turn.sample_rate, INPUT_RATE), turn.cancel)
            user_part = None
        else:
            user_part = audio_url_part(audio, turn.sample_rate)
            messages = [
                {"role": "system", "content": system_prompt(options)},
                *history,
                {"role": "user", "content": [user_part]},
            ]
            body = self.chat.payload(
                messages,
                stream=s.stream,
                speaker=self.voice(options),
                max_tokens=s.max_tokens,
                temperature=s.temperature if options.temperature is None else options.temperature,
                seed=options.seed,
            )
            pieces = self.chat.reply(body, turn.cancel)
        text = yield from self._play(pieces, turn.cancel)
        if user_part is not None and text and s.history_turns:
            history += [{"role": "user", "content": [user_part]}, {"role": "assistant", "content": text}]
            trim_history(history, s.history_turns)

    def _play(self, pieces: Iterator[TextPiece | AudioPiece], cancel: threading.Event) -> Generator[Event, None, str]:
        """Events for the pieces; returns the reply text. No audio at all fails the turn (when required)."""
        yield Mark("request_sent")
        chunker = SentenceChunker()
        said: list[str] = []
        heard_text = heard_audio = False
        for piece in pieces:
            if cancel.is_set():
                return " ".join(said)
            if isinstance(piece, TextPiece):
                if not heard_text:
                    yield Mark("first_text")
                    heard_text = True
                for sentence in chunker.feed(piece.text):
                    said.append(sentence)
                    yield TextOut(sentence, role="agent")
            elif len(piece.pcm):
                held = chunker.flush()  # the text this audio speaks goes to the transcript first
                if held:
                    said.append(held)
                    yield TextOut(held, role="agent")
                if not heard_audio:
                    yield Mark("first_audio_in")
                    heard_audio = True
                yield AudioOut(piece.pcm, piece.sample_rate)
        rest = chunker.flush()
        if rest:
            said.append(rest)
            yield TextOut(rest, role="agent")
        if not heard_audio and self.settings.require_audio and not cancel.is_set():
            got = "only text" if said else "neither text nor audio"
            raise EngineError(
                f"the server sent {got}, no audio (is it serving {self.settings.model} with its talker stages, "
                "e.g. `vllm serve ... --omni`?)"
            )
        return " ".join(said)

    def close(self) -> None:
        """Close the HTTP connection pool and the kept realtime connections."""
        for client in (self.http, self.realtime):
            if client is not None:
                client.close()
