"""A TTS stage that calls an OpenAI-compatible ``POST /v1/audio/speech`` server (vLLM-Omni, OpenAI, Kokoro, ...).

It satisfies the cascade's :class:`~speechlm_demo.engines.cascade.tts.TTS` protocol; :func:`build_voice`
returns it for ``tts.kind: openai`` and the cascade's own Piper / espeak-ng stages otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from ..base import EngineError
from ..cascade import stage_settings
from ..cascade.tts import TTS, build_tts, decoded_audio
from ..openai_http import ChatHTTP, endpoint


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
        sample_rate: int = 24_000,
        timeout_s: float = 30.0,
    ) -> None:
        url = os.environ.get(base_url_env) or base_url
        if not url:
            raise EngineError(f"tts: kind openai needs a server: set {base_url_env} (or 'base_url')")
        self.url = endpoint(url, "/audio/speech")
        self.model, self.voice = model, voice
        self.sample_rate = sample_rate
        self._http = ChatHTTP(
            url,
            name=f"the speech server {self.url}",
            api_key_env=api_key_env,
            connect_timeout=timeout_s,
            read_timeout=timeout_s,
        )

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """The whole chunk as one piece of audio."""
        if not text.strip():
            return
        body: dict[str, Any] = {"model": self.model, "input": text, "response_format": "wav"}
        if self.voice:
            body["voice"] = self.voice
        wav = self._http.post_for_bytes("/audio/speech", body)
        yield decoded_audio(wav, self.sample_rate, self._http.name)


def build_voice(config: Mapping[str, Any]) -> TTS:
    """``kind: openai`` -> :class:`OpenAISpeechTTS`; ``piper`` / ``espeak`` -> the cascade's own stages."""
    if config.get("kind") == "openai":
        return OpenAISpeechTTS(**stage_settings("tts", OpenAISpeechTTS, config))
    return build_tts(config)
