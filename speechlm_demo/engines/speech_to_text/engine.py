"""Audio-input LLMs on a vLLM server (Ultravox, Qwen2-Audio, Voxtral, Gemma 3n, Phi-4-multimodal, ...).

The turn goes to ``POST /v1/chat/completions`` as an OpenAI ``input_audio`` content part (base64 WAV; vLLM
0.30.0 ``vllm/entrypoints/chat_utils.py`` ``parse_input_audio``) or an ``audio_url`` data URL; the reply
text streams back as SSE (vLLM 0.30.0 ``vllm/entrypoints/openai/chat_completion/serving.py``) and goes through
the cascade's :func:`~speechlm_demo.engines.cascade.speak.speak_text_stream` (its chunking and its TTS stage:
Piper by default, or an OpenAI-compatible ``/v1/audio/speech`` server). ``model: auto`` takes the first model the
server lists at ``/v1/models``.
"""

from __future__ import annotations

import base64
import logging
import threading
from collections.abc import Iterator
from contextlib import closing
from itertools import chain
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ...audio import encode_wav, to_mono_float32
from ...turntaking.half_duplex import HalfDuplexEngine
from ..base import EngineError, EngineSettings, Event, Mark, Progress, SessionOptions, UserTurn
from ..cascade.settings import check_stage, stage_waits
from ..cascade.speak import speak_text_stream
from ..cascade.tts_kinds import build_tts
from ..history import trim_history
from ..openai_http import chat_text
from ..read_aside import read_aside
from ..remote_settings import OpenAIServerSettings
from ..vllm_omni.client import audio_url_part

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Your words are spoken aloud, so answer in one or two short, "
    "plain sentences, with no lists, no Markdown and no emojis."
)
AUTO = "auto"


class SpeechToTextSettings(OpenAIServerSettings):
    """Settings of a speech-in/text-out engine (catalogue ``defaults``)."""

    model: str = Field(AUTO, description="model id, or 'auto' for the first model the server lists")
    audio_part: Literal["input_audio", "audio_url"] = "input_audio"
    system_prompt: str | None = Field(None, description="default prompt (a session's prompt replaces it)")
    send_system_prompt: bool = Field(True, description="some audio models' chat templates reject a system turn")
    first_chunk_words: int = Field(4, ge=1, description="the first spoken chunk may end after this many words")
    tts: dict[str, Any] = Field(
        default_factory=lambda: {"kind": "piper", "voice": "offline"}, description="kind (piper | espeak | openai) and its arguments"
    )

    @field_validator("tts")
    @classmethod
    def _voice_known(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_stage("tts", value)

    def waits_within_a_reply(self) -> dict[str, float]:
        """The server's waits and its speech server voice's (``tts.kind: openai``)."""
        return {**super().waits_within_a_reply(), **stage_waits({"tts": self.tts})}


def input_audio_part(audio: Any, sample_rate: int) -> dict[str, Any]:
    """The turn as an OpenAI ``input_audio`` part (base64 WAV)."""
    data = base64.b64encode(encode_wav(audio, sample_rate)).decode("ascii")
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


class SpeechToTextEngine(HalfDuplexEngine):
    """A vLLM server's audio-input model for the words, the cascade's TTS for the voice."""

    Settings: ClassVar[type[EngineSettings]] = SpeechToTextSettings
    settings: SpeechToTextSettings

    def _load(self, progress: Progress) -> None:
        s = self.settings
        self.http = s.chat_http("the vLLM server")
        self._model: str | None = None if s.model == AUTO else s.model
        served = self.http.check_model(self._model, s.url_env)  # a server that does not answer fails the load here
        if self._model is None and served:
            self._use(served[0])
        progress(0.3, "loading voice")
        self.tts = build_tts(s.tts)
        progress(1.0, "ready")

    def _use(self, model: str) -> None:
        self._model = model
        log.info("%s: using %s, the first model the server lists", self.id, model)

    def model(self, cancel: threading.Event) -> str | None:
        """The model id; for ``auto`` the server's first, asked at load or, if it could not tell then, at the
        first turn (read aside: None once ``cancel`` is set while it has not answered)."""
        if self._model is None:
            with closing(read_aside("GET /v1/models", lambda stop: [self.http.model_ids()], cancel)) as answers:
                ids = next(answers, None)
            if ids is None:
                return None
            if not ids:
                raise EngineError(f"{self.http.name} lists no models at /v1/models")
            self._use(ids[0])
        return self._model

    def respond(self, turn: UserTurn, history: list[dict[str, Any]], options: SessionOptions) -> Iterator[Event]:
        """Stream the model's reply text and speak it chunk by chunk."""
        audio = to_mono_float32(turn.audio)
        if not len(audio):
            raise EngineError("the turn has no audio to send")
        s = self.settings
        make_part = input_audio_part if s.audio_part == "input_audio" else audio_url_part
        user = {"role": "user", "content": [make_part(audio, turn.sample_rate)]}
        prompt = options.system_prompt or s.system_prompt or DEFAULT_SYSTEM_PROMPT
        system = [{"role": "system", "content": prompt}] if s.send_system_prompt else []
        model = self.model(turn.cancel)
        if model is None:
            return  # cancelled while the server was asked for its model
        body: dict[str, Any] = {"model": model, "messages": [*system, *history, user], "stream": True}
        if s.max_tokens is not None:
            body["max_tokens"] = s.max_tokens
        temperature = s.temperature if options.temperature is None else options.temperature
        if temperature is not None:
            body["temperature"] = temperature
        if options.seed is not None:
            body["seed"] = options.seed
        spoken: list[str] = []
        yield Mark("request_sent")
        pieces = chat_text(self.http.post("/chat/completions", body, turn.cancel), self.http.name)
        first = next(pieces, None)  # the first text of the reply (or nothing at all)
        if first is None:
            if turn.cancel.is_set():
                return
            raise EngineError(f"{self.http.name} sent an empty reply")
        yield Mark("first_text")
        yield from speak_text_stream(
            chain([first], pieces), self.tts, turn.cancel, first_chunk_words=s.first_chunk_words, spoken=spoken
        )
        if s.history_turns and spoken:
            history += [user, {"role": "assistant", "content": " ".join(spoken)}]
            trim_history(history, s.history_turns)

    def close(self) -> None:
        """Close the HTTP connection pool."""
        http = getattr(self, "http", None)
        if http is not None:
            http.close()
