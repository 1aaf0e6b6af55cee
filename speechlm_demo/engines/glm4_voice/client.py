"""GLM-4-Voice: the speech tokenizer and decoder run here, the 9B model on its server.

Per turn: speech tokens of the turn (16 kHz) -> prompt (earlier turns' prompt + completion, then this turn)
-> ``POST /generate_stream`` -> token lines; text tokens are decoded as they come, speech tokens go to the
decoder in growing blocks (25, 50, 100, 150, 200 tokens, as ``web_demo.py``), ``<|user|>`` ends the reply.
Without a decoder (``decoder_path`` empty) replies are text only, said once per session.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing

from pydantic import Field

from ...audio import resample
from ..base import AudioOut, EngineError, Event, Progress, SessionOptions, TextOut, UserTurn
from ..fallback import ServerEngine
from ..server_client import (
    ServerFailure,
    ServerSettings,
    check_reachable,
    reply_chunks,
    reply_format,
    text_events,
)
from .local_models import BLOCK_SIZES, DECODER_RATE, GlmModels, load_models
from .protocol import ServerError, TokenLineReader, build_prompt, speech_code, speech_input


class Glm4VoiceSettings(ServerSettings):
    """Catalogue ``defaults`` of the GLM-4-Voice entry."""

    url_env: str = "GLM4_VOICE_URL"
    model_path: str = Field("THUDM/glm-4-voice-9b", description="for its tokenizer only")
    tokenizer_path: str = "THUDM/glm-4-voice-tokenizer"
    decoder_path: str = Field("", description="a glm-4-voice-decoder folder ('' = text-only replies)")
    repo_path: str = Field("", description="a GLM-4-Voice checkout (speech_tokenizer/, flow_inference.py)")
    temperature: float = Field(0.2, ge=0)
    top_p: float = Field(0.8, gt=0, le=1)
    max_new_tokens: int = Field(2000, ge=1)


class Glm4VoiceEngine(ServerEngine):
    """Client of ``model_server.py``."""

    Settings = Glm4VoiceSettings
    settings: Glm4VoiceSettings
    models: GlmModels | None = None

    def connect(self, progress: Progress) -> None:
        """Resolve the URL, load the local models (once), then check the server answers."""
        self.base_url = self.settings.server_url(self.entry.label)
        if self.models is None:
            progress(0.1, "loading GLM-4-Voice's tokenizers and decoder")
            s = self.settings
            try:
                self.models = load_models(s.model_path, s.tokenizer_path, s.decoder_path, s.repo_path, self.device)
            except ImportError as exc:
                raise EngineError(str(exc)) from exc
        progress(0.6, f"checking {self.base_url}")
        check_reachable(self.base_url, self.settings.connect_timeout_s, self.entry.label)

    def respond_remote(self, turn: UserTurn, history: list[dict], options: SessionOptions) -> Iterator[Event]:
        """Tokenise the turn, stream the server's tokens, decode text and speech."""
        assert self.models is not None
        audio = turn.audio if turn.sample_rate == 16_000 else resample(turn.audio, turn.sample_rate, 16_000)
        tokens = self.models.speech_tokenizer.tokens(audio)
        if not tokens:
            raise EngineError("GLM-4-Voice's speech tokenizer found no speech in the turn")
        previous = next((m["glm_prompt"] for m in reversed(history) if m.get("glm_prompt")), "")
        prompt = build_prompt(previous, speech_input(tokens))
        payload = {"prompt": prompt, "temperature": self.settings.temperature, "top_p": self.settings.top_p, "max_new_tokens": self.settings.max_new_tokens}
        if self.models.decoder is None:
            yield from self.note_once(options, "no speech decoder is set up here (decoder_path), so its replies are text only.")
        complete: list[int] = []
        text = yield from self._stream(payload, turn, complete)
        if turn.cancel.is_set():
            return
        if not complete:
            raise ServerFailure(f"{self.entry.label} finished without a reply")
        if text.strip():
            yield TextOut(text.strip(), "agent")
        history.append({"role": "user", "content": ""})
        history.append({"role": "assistant", "content": text.strip(), "glm_prompt": prompt + self.models.tokenizer.decode(complete)})

    def _stream(self, payload: dict, turn: UserTurn, complete: list[int]) -> Iterator[Event]:
        assert self.models is not None
        label, tokenizer, decoder = self.entry.label, self.models.tokenizer, self.models.decoder
        reader = TokenLineReader()
        text_ids: list[int] = []
        speech: list[int] = []
        text, block = "", 0
        state = decoder.start() if decoder is not None else None
        finished = False
        chunks = reply_chunks(self.base_url + "/generate_stream", payload, self.settings, label, turn.cancel)
        with closing(chunks), reply_format(label):
            try:
                for chunk in chunks:
                    for token in reader.feed(chunk):
                        finished = token == tokenizer.end_id
                        if not finished:
                            complete.append(token)
                            if token >= tokenizer.audio_offset:
                                speech.append(speech_code(token, tokenizer.audio_offset, tokenizer.audio_tokens))
                            else:
                                text_ids.append(token)
                                now = tokenizer.decode(text_ids)
                                yield from text_events(text, now)
                                text = now
                        if decoder is not None and speech and (len(speech) >= BLOCK_SIZES[block] or finished):
                            audio, state = decoder.feed(speech, state, finished)
                            block = min(block + 1, len(BLOCK_SIZES) - 1)
                            speech = []
                            if len(audio):
                                yield AudioOut(audio, DECODER_RATE)
                        if finished:
                            return text
            except ServerError as exc:
                raise ServerFailure(f"{label} failed the turn: {exc}") from exc
        if decoder is not None and speech and not turn.cancel.is_set():
            audio, state = decoder.feed(speech, state, True)  # the stream ended without <|user|> (max_new_tokens)
            if len(audio):
                yield AudioOut(audio, DECODER_RATE)
        return text
