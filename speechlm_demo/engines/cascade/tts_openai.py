"""A TTS stage that calls an OpenAI-compatible ``POST /v1/audio/speech`` server (vLLM-Omni, OpenAI, Kokoro, ...).

The cascade's ``tts.kind: openai`` (:mod:`.tts_kinds`), and so also that of every engine that speaks through
the cascade's TTS stage (the speech-in / text-out rows, Qwen2-Audio in process).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Annotated, Any

import numpy as np
from pydantic import Field

from ..openai_http import stage_client
from .stage_args import Seconds, stage_kind
from .tts import decoded_audio


@stage_kind("tts", "openai")
class OpenAISpeechTTS:
    """One request per speakable chunk; the reply is a WAV decoded and resampled to :attr:`sample_rate`."""

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        base_url_env: str = "TTS_URL",
        voice: str | None = None,
        api_key_env: str | None = None,
        sample_rate: Annotated[int, Field(gt=0)] = 24_000,
        timeout_s: Seconds = 30.0,
    ) -> None:
        self._http, self.url = stage_client(
            "tts", "speech server", "/audio/speech", base_url, base_url_env,
            api_key_env=api_key_env, connect_timeout=timeout_s, read_timeout=timeout_s,
        )
        self.model, self.voice = model, voice
        self.sample_rate = sample_rate

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[np.ndarray]:
        """The whole chunk as one piece of audio; nothing once ``cancel`` is set, even mid-request."""
        if not text.strip():
            return
        body: dict[str, Any] = {"model": self.model, "input": text, "response_format": "wav"}
        if self.voice:
            body["voice"] = self.voice
        wav = self._http.post_for_bytes("/audio/speech", body, cancel=cancel)
        if wav is None:
            return
        yield decoded_audio(wav, self.sample_rate, self._http.name)

