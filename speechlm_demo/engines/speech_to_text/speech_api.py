"""A TTS stage that calls an OpenAI-compatible ``POST /v1/audio/speech`` server (vLLM-Omni, OpenAI, Kokoro, ...).

It satisfies the cascade's :class:`~speechlm_demo.engines.cascade.tts.TTS` protocol; :func:`build_voice`
returns it for ``tts.kind: openai`` and the cascade's own Piper / espeak-ng stages otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import httpx
import numpy as np

from ...audio import AudioError, decode_audio, resample
from ..base import EngineError
from ..cascade import stage_settings
from ..cascade.tts import TTS, build_tts
from ..vllm_omni.sse import endpoint, error_text


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
        self.model, self.voice, self.api_key_env = model, voice, api_key_env
        self.sample_rate = sample_rate
        self._client = httpx.Client(timeout=timeout_s)

    def synthesize(self, text: str) -> Iterator[np.ndarray]:
        """The whole chunk as one piece of audio."""
        if not text.strip():
            return
        body: dict[str, Any] = {"model": self.model, "input": text, "response_format": "wav"}
        if self.voice:
            body["voice"] = self.voice
        headers = {}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise EngineError(f"the speech server needs an API key: set {self.api_key_env}")
            headers["Authorization"] = f"Bearer {key}"
        try:
            response = self._client.post(self.url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise EngineError(f"speech server {self.url} failed: {type(exc).__name__}: {exc}") from None
        if response.status_code >= 400:
            raise EngineError(f"speech server {self.url} answered HTTP {response.status_code}: {error_text(response.text)}")
        try:
            audio, rate = decode_audio(response.content)
        except AudioError as exc:
            raise EngineError(f"speech server {self.url} sent no usable audio: {exc}") from None
        yield resample(audio, rate, self.sample_rate)


def build_voice(config: Mapping[str, Any]) -> TTS:
    """``kind: openai`` -> :class:`OpenAISpeechTTS`; ``piper`` / ``espeak`` -> the cascade's own stages."""
    if config.get("kind") == "openai":
        return OpenAISpeechTTS(**stage_settings("tts", OpenAISpeechTTS, config))
    return build_tts(config)
