"""Qwen2.5-Omni in process (transformers ``Qwen2_5OmniForConditionalGeneration``): speech in, speech out.

The thinker's text streams into the transcript as it is written (``thinker_streamer``). The audio does
not stream: in transformers 5.23 ``generate`` runs thinker, then talker, then token2wav, and returns the
whole waveform (24 kHz) at the end, so the first reply audio comes after the whole reply is generated.
For streamed audio use vLLM-Omni (its own engine). Audio output needs Qwen's own system prompt; a user's
system prompt is appended to it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np

from ...audio import resample, to_mono_float32
from ..base import AudioOut, EngineError, Event, Mark, Progress, SessionOptions, TextOut, UserTurn
from ..history import trim_history
from .engine_base import LocalQwenEngine, warm_up_noise
from .prompt import INPUT_RATE, QWEN_SYSTEM_PROMPT, build_inputs
from .settings import QwenOmniSettings

log = logging.getLogger(__name__)

OUTPUT_RATE = 24_000
NO_REPLY = "(Qwen2.5-Omni gave no answer)"


class QwenOmniEngine(LocalQwenEngine):
    """Qwen2.5-Omni (3B or 7B) from a hub id or a local directory (``defaults.model``)."""

    Settings: ClassVar[type[QwenOmniSettings]] = QwenOmniSettings
    settings: QwenOmniSettings
    stream_name: ClassVar[str] = "qwen-omni"

    def _load(self, progress: Progress) -> None:
        self._load_model(progress, "Qwen2_5OmniForConditionalGeneration", ("qwen2_5_omni",), ("spk_dict.pt",))
        voices = self.voices()
        if not voices:
            raise EngineError(f"{self.settings.model} has no speakers (spk_dict.pt is empty)")
        if self.settings.voice not in voices:
            raise EngineError(f"voice {self.settings.voice!r} is not in {self.settings.model}; it has {', '.join(voices)}")
        if self.settings.warm_up:
            progress(0.8, "warming up")
            self._warm_up()
        progress(1.0, "ready")

    def voices(self) -> list[str]:
        """The speakers this checkpoint can speak with (its ``spk_dict.pt``)."""
        return sorted(self.loaded_model.model.speaker_map)

    def voice_for(self, options: SessionOptions) -> str:
        """The session's voice if this checkpoint has it (any case), else the row's (as the vLLM-Omni engines do:
        one Voice field serves every engine of a comparison)."""
        by_name = {name.lower(): name for name in self.voices()}
        if options.voice and options.voice.lower() in by_name:
            return by_name[options.voice.lower()]
        if options.voice:
            log.warning("voice %r is not in %s (it has %s); speaking with %s", options.voice, self.settings.model,
                        ", ".join(self.voices()), self.settings.voice)
        return self.settings.voice

    def _warm_up(self) -> None:
        """A two-token text-only reply to half a second of quiet noise (kernels, caches, allocator)."""
        inputs = self._inputs(warm_up_noise(), [], SessionOptions())
        run = self._stream(
            lambda streamer, stop: self.loaded_model.model.generate(
                **inputs, generation_mode="text", thinker_max_new_tokens=2, thinker_streamer=streamer,
                thinker_stopping_criteria=stop, speaker=self.settings.voice,
            ),
            threading.Event(),
        )
        for _piece in run.text():
            pass
        run.result()

    def system_prompt(self, options: SessionOptions) -> str:
        """Qwen's own prompt (audio output depends on it), then the session's or the catalogue's, if any."""
        extra = options.system_prompt or self.settings.system_prompt
        return f"{QWEN_SYSTEM_PROMPT} {extra}" if extra else QWEN_SYSTEM_PROMPT

    def _inputs(self, audio: np.ndarray, history: list[dict[str, Any]], options: SessionOptions) -> dict[str, Any]:
        token_id = self.loaded_model.model.config.thinker_config.audio_token_index
        return build_inputs(self.loaded_model, self.system_prompt(options), history, audio, token_id)

    def respond(self, turn: UserTurn, history: list[dict[str, Any]], options: SessionOptions) -> Iterator[Event]:
        """Stream the thinker's words, then hand on the talker's whole waveform in ``audio_chunk_s`` pieces."""
        voice = self.voice_for(options)
        audio = resample(to_mono_float32(turn.audio), turn.sample_rate, INPUT_RATE)
        inputs = self._inputs(audio, history, options)
        run = self._stream(self._generate_call(inputs, voice, options), turn.cancel, options.seed)
        words: list[str] = []
        for piece in run.text():
            if turn.cancel.is_set():
                return
            text = piece.strip()
            if not text:
                continue
            if not words:
                yield Mark("llm_first_token")
            words.append(text)
            yield TextOut(text, role="agent")
        if turn.cancel.is_set():
            return
        _ids, waveform = run.result()
        if not words:
            yield TextOut(NO_REPLY, role="agent")
        pcm = waveform.detach().float().cpu().numpy().reshape(-1)
        if not len(pcm):
            raise EngineError("Qwen2.5-Omni wrote a reply but its talker produced no audio")
        step = max(1, int(self.settings.audio_chunk_s * OUTPUT_RATE))
        for start in range(0, len(pcm), step):
            if turn.cancel.is_set():
                return
            yield AudioOut(np.clip(pcm[start : start + step], -1.0, 1.0), OUTPUT_RATE)
        history.extend([{"role": "user", "audio": audio}, {"role": "assistant", "content": " ".join(words)}])
        trim_history(history, self.settings.history_turns)

    def _generate_call(self, inputs: dict[str, Any], voice: str, options: SessionOptions) -> Any:
        settings = self.settings_for(options)
        sampling = self.sampling(options, "thinker_")

        def generate(streamer: Any, stop: Any) -> Any:
            return self.loaded_model.model.generate(
                **inputs,
                speaker=voice,
                thinker_streamer=streamer,
                thinker_stopping_criteria=stop,
                talker_stopping_criteria=stop,
                thinker_max_new_tokens=settings.max_new_tokens,
                talker_max_new_tokens=settings.talker_max_new_tokens,
                **sampling,
            )

        return generate
