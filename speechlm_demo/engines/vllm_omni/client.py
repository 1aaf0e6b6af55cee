"""``POST /v1/chat/completions`` to a vLLM-Omni server: the request, and the reply as text and audio pieces.

Matched against vllm-omni 0.30.0 ``vllm_omni/entrypoints/openai/serving_chat.py``:

* streamed (``stream: true``): every chunk has a top-level ``"modality"``: ``"text"`` chunks carry
  ``choices[0].delta.content`` text (the first one is the role chunk with ``""``); ``"audio"`` chunks carry a
  complete base64 WAV (16-bit, 24 kHz for Qwen) in ``choices[0].delta.content`` plus ``audio_metadata``
  ``{format, sample_rate_hz, frame_count, channels}``; an audio chunk with ``""`` content has no waveform.
  A usage chunk has ``"choices": []``. An error after HTTP 200 is ``data: {"error": ...}`` then ``[DONE]``.
* not streamed: one JSON body; ``choices[0].message.content`` is the text and ``message.audio.data`` the
  base64 WAV (text and audio merged into one choice, upstream #7376).
* the voice is the top-level ``speaker`` (or ``voice``) field, checked against the model's speakers.
"""

from __future__ import annotations

import base64
import binascii
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from ...audio import AudioError, decode_audio, encode_wav
from ..base import EngineError
from ..openai_http import ChatHTTP

NAME = "the vLLM-Omni server"
DEFAULT_RATE = 24_000  # what vllm-omni 0.30.0 assumes when a stage reports no rate
RATES = (8_000, 192_000)


@dataclass(frozen=True)
class TextPiece:
    """Reply text as it streams."""

    text: str


@dataclass(frozen=True)
class AudioPiece:
    """A decoded reply audio chunk (mono float32)."""

    pcm: np.ndarray
    sample_rate: int


def audio_url_part(audio: np.ndarray, sample_rate: int) -> dict[str, Any]:
    """The user's turn as an ``audio_url`` content part (a base64 WAV data URL)."""
    data = base64.b64encode(encode_wav(audio, sample_rate)).decode("ascii")
    return {"type": "audio_url", "audio_url": {"url": f"data:audio/wav;base64,{data}"}}


def sample_rate_field(value: Any, name: str = NAME) -> int:
    """A reply's ``sample_rate_hz`` (:data:`DEFAULT_RATE` when absent); anything but a whole rate in Hz is refused."""
    if value is None:
        return DEFAULT_RATE
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not RATES[0] <= value <= RATES[1] or value % 1:
        raise EngineError(f"{name} sent a sample_rate_hz that is not a sample rate: {str(value)[:40]!r}")
    return int(value)


def pcm16_piece(data: Any, rate: Any, name: str = NAME) -> AudioPiece:
    """Base64 little-endian PCM16 mono at ``rate`` (a ``sample_rate_hz`` field) as an :class:`AudioPiece`."""
    raw = _base64(data, name)
    if len(raw) % 2:
        raise EngineError(f"{name} sent PCM16 audio with an odd number of bytes ({len(raw)})")
    return AudioPiece(np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0, sample_rate_field(rate, name))


def _base64(data: Any, name: str) -> bytes:
    try:
        return base64.b64decode(data if isinstance(data, str) else b"!", validate=True)
    except (binascii.Error, ValueError):
        raise EngineError(f"{name} sent audio that is not base64: {str(data)[:60]!r}") from None


def decode_audio_chunk(data: str, metadata: Any) -> AudioPiece:
    """A base64 audio payload (WAV, or raw PCM16 when ``audio_metadata.format`` says ``pcm``)."""
    if metadata is not None and not isinstance(metadata, dict):
        raise EngineError(f"{NAME} sent audio_metadata that is not an object: {str(metadata)[:60]!r}")
    metadata = metadata or {}
    if metadata.get("format", "wav") == "pcm":
        return pcm16_piece(data, metadata.get("sample_rate_hz"))
    raw = _base64(data, NAME)
    try:
        pcm, rate = decode_audio(raw)
    except AudioError as exc:
        raise EngineError(f"{NAME} sent audio that cannot be decoded: {exc}") from None
    return AudioPiece(pcm, rate)


class OmniChatClient:
    """Chat completions with text and audio output, streamed or not."""

    def __init__(self, http: ChatHTTP, model: str) -> None:
        self.http = http
        self.model = model

    def payload(
        self,
        messages: list[dict[str, Any]],
        *,
        stream: bool,
        speaker: str | None,
        max_tokens: int | None,
        temperature: float | None,
        seed: int | None,
    ) -> dict[str, Any]:
        """The request body (text and audio out)."""
        body: dict[str, Any] = {"model": self.model, "messages": messages, "modalities": ["text", "audio"]}
        if stream:
            body["stream"] = True
        if speaker:
            body["speaker"] = speaker
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        if temperature is not None:
            body["temperature"] = temperature
        if seed is not None:
            body["seed"] = seed
        return body

    def reply(self, body: dict[str, Any], cancel: threading.Event) -> Iterator[TextPiece | AudioPiece]:
        """Send ``body``; yield text and audio pieces in the order the server sends them."""
        for event in self.http.post("/chat/completions", body, cancel):
            if body.get("stream"):
                yield from _stream_pieces(event)
            else:
                yield from _whole_reply(event)


def _stream_pieces(chunk: dict[str, Any]) -> Iterator[TextPiece | AudioPiece]:
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        raise EngineError(f"{NAME} sent a chunk without choices: {str(chunk)[:200]}")
    if not choices:  # the usage chunk
        return
    choice = choices[0]
    delta = choice.get("delta") if isinstance(choice, dict) else None
    if not isinstance(delta, dict):
        raise EngineError(f"{NAME} sent a chunk without choices[0].delta: {str(chunk)[:200]}")
    content = delta.get("content")
    if not content:
        return
    if not isinstance(content, str):
        raise EngineError(f"{NAME} sent non-text delta content: {str(content)[:100]}")
    modality = chunk.get("modality", "text")
    if modality == "audio":
        yield decode_audio_chunk(content, choice.get("audio_metadata"))
    elif modality == "text":
        yield TextPiece(content)


def _whole_reply(body: dict[str, Any]) -> Iterator[TextPiece | AudioPiece]:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices:
        raise EngineError(f"{NAME} reply has no choices: {str(body)[:200]}")
    for choice in choices:  # one merged choice; an audio-only reply may add a standalone audio choice
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise EngineError(f"{NAME} reply choice has no message: {str(choice)[:200]}")
        if message.get("content"):
            yield TextPiece(str(message["content"]))
        audio = message.get("audio")
        if isinstance(audio, dict) and audio.get("data"):
            yield decode_audio_chunk(str(audio["data"]), choice.get("audio_metadata"))
