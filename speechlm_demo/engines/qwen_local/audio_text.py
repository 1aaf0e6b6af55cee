"""Qwen2-Audio in process (transformers ``Qwen2AudioForConditionalGeneration``): speech in, text out.

The model hears the turn itself (no ASR) and writes its answer; the text streams from ``generate``'s
thread into the cascade's chunking and TTS stage (:mod:`..cascade.speak`), which speaks each chunk while
the model writes the next.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...audio import resample, to_mono_float32
from ..base import Event, Progress, SessionOptions, TextOut, UserTurn
from ..cascade.speak import speak_text_stream
from ..cascade.tts import TTS
from ..cascade.tts_kinds import build_tts
from ..history import trim_history
from .engine_base import LocalQwenEngine, warm_up_noise
from .prompt import INPUT_RATE, build_inputs
from .settings import Qwen2AudioSettings

if TYPE_CHECKING:
    from .streaming import StreamedGeneration

log = logging.getLogger(__name__)

DEFAULT_SYSTEM_PROMPT = (
    "You are a friendly voice assistant. Listen to the user's speech and answer it. Your words are spoken "
    "aloud, so answer in one or two short, plain sentences, with no lists, no Markdown and no emojis."
)
NO_REPLY = "(Qwen2-Audio gave no answer)"


class Qwen2AudioEngine(LocalQwenEngine):
    """Qwen2-Audio-7B-Instruct (hub id or local directory) whose replies the cascade's TTS speaks."""

    Settings: ClassVar[type[Qwen2AudioSettings]] = Qwen2AudioSettings
    settings: Qwen2AudioSettings
    stream_name: ClassVar[str] = "qwen2-audio"
    tts: TTS

    def _load(self, progress: Progress) -> None:
        self._load_model(progress, "Qwen2AudioForConditionalGeneration", ("qwen2_audio",))
        progress(0.7, "loading voice")
        self.tts = build_tts(self.settings.tts)
        if self.settings.warm_up:
            progress(0.85, "warming up")
            run = self._start(self._inputs(warm_up_noise(), [], SessionOptions()), SessionOptions(), threading.Event(), 2)
            for _piece in run.text():
                pass
            run.result()
            for _chunk in self.tts.synthesize("Hi."):
                pass
        progress(1.0, "ready")

    def system_prompt(self, options: SessionOptions) -> str:
        """The session's prompt, else the catalogue's, else a short spoken-style default."""
        return options.system_prompt or self.settings.system_prompt or DEFAULT_SYSTEM_PROMPT

    def _inputs(self, audio: np.ndarray, history: list[dict[str, Any]], options: SessionOptions) -> dict[str, Any]:
        """Model inputs: the system prompt, earlier turns ("Audio n: ..." and replies), this turn's audio."""
        return build_inputs(
            self.loaded_model, self.system_prompt(options), history, audio,
            self.loaded_model.model.config.audio_token_index, audio_label=lambda number: f"Audio {number}: ",
        )

    def _start(
        self, inputs: dict[str, Any], options: SessionOptions, cancel: threading.Event, max_new_tokens: int | None = None
    ) -> StreamedGeneration:
        """``generate`` streamed from a thread, with the session's temperature and seed."""
        model = self.loaded_model.model
        limit = max_new_tokens or self.settings_for(options).max_new_tokens
        sampling = self.sampling(options)

        def generate(streamer: Any, stop: Any) -> Any:
            return model.generate(**inputs, streamer=streamer, stopping_criteria=stop, max_new_tokens=limit, **sampling)

        return self._stream(generate, cancel, options.seed)

    def respond(self, turn: UserTurn, history: list[dict[str, Any]], options: SessionOptions) -> Iterator[Event]:
        """Stream the model's answer into the TTS stage, chunk by chunk."""
        audio = resample(to_mono_float32(turn.audio), turn.sample_rate, INPUT_RATE)
        run = self._start(self._inputs(audio, history, options), options, turn.cancel)
        spoken: list[str] = []
        yield from speak_text_stream(
            run.text(), self.tts, turn.cancel, first_chunk_words=self.settings.first_chunk_words, spoken=spoken
        )
        if turn.cancel.is_set():
            return
        run.result()  # raises what generate raised
        if not spoken:
            yield TextOut(NO_REPLY, role="agent")
            return
        history.extend([{"role": "user", "audio": audio}, {"role": "assistant", "content": " ".join(spoken)}])
        trim_history(history, self.settings.history_turns)
