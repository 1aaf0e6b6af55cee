"""The turn-based realtime websocket ``/v1/realtime`` of vLLM-Omni 0.30.0 (Qwen3-Omni only in that release).

Matched against vllm-omni 0.30.0 ``vllm_omni/entrypoints/openai/realtime_connection.py`` and the base class
in vllm 0.30.0 ``vllm/entrypoints/speech_to_text/realtime/{connection,protocol}.py``:

client -> server: ``session.update {model}``, ``input_audio_buffer.commit`` (starts generation),
``input_audio_buffer.append {audio: base64 PCM16 16 kHz}``, ``input_audio_buffer.commit {final: true}``.
server -> client: ``session.created``, ``transcription.delta {delta}`` (the assistant's text),
``response.output_audio.delta {audio: base64 PCM16, format: "pcm16", sample_rate_hz}``,
``transcription.done {text, usage}``, ``response.output_audio.done {has_audio}`` (always last), and
``error {error, code}`` with codes invalid_json, unknown_event, invalid_event, model_not_found,
model_not_validated, invalid_audio, processing_error, unsupported.

The server keeps no conversation per utterance and takes no system prompt or voice: each turn stands alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from ...audio import to_int16
from ..base import EngineError
from .client import AudioPiece, TextPiece

log = logging.getLogger(__name__)

NAME = "the vLLM-Omni realtime server"
INPUT_RATE = 16_000
APPEND_SAMPLES = INPUT_RATE // 10  # 100 ms per append event


def realtime_url(base_url: str) -> str:
    """``http://host:8091[/v1]`` (or ``ws://...``) to ``ws://host:8091/v1/realtime``."""
    parts = urlsplit(base_url.strip())
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None or not parts.hostname:
        raise EngineError(f"{base_url!r} is not a server URL (expected e.g. http://gpu-box:8091)")
    path = parts.path.rstrip("/")
    if not path.endswith("/realtime"):
        path = (path if path.endswith("/v1") else path + "/v1") + "/realtime"
    return urlunsplit((scheme, parts.netloc, path, "", ""))


class RealtimeClient:
    """One websocket per turn: send the whole turn, read text and audio until ``output_audio.done``."""

    def __init__(self, base_url: str, model: str, *, connect_timeout: float = 5.0, read_timeout: float = 60.0) -> None:
        self.url = realtime_url(base_url)
        self.model = model
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout

    def reply(self, audio_16k: np.ndarray, cancel: threading.Event) -> Iterator[TextPiece | AudioPiece]:
        """Stream one utterance (mono float32 at 16 kHz); yield the reply's text and audio pieces."""
        try:
            with connect(self.url, open_timeout=self.connect_timeout, close_timeout=1.0, max_size=None) as ws:
                self._expect_created(ws)
                self._send(ws, {"type": "session.update", "model": self.model})
                self._send(ws, {"type": "input_audio_buffer.commit"})
                pcm = to_int16(audio_16k)
                for start in range(0, len(pcm), APPEND_SAMPLES):
                    piece = base64.b64encode(pcm[start : start + APPEND_SAMPLES].tobytes()).decode("ascii")
                    self._send(ws, {"type": "input_audio_buffer.append", "audio": piece})
                self._send(ws, {"type": "input_audio_buffer.commit", "final": True})
                yield from self._events(ws, cancel)
        except TimeoutError:
            raise EngineError(f"{NAME} at {self.url} sent nothing for {self.read_timeout:g} s") from None
        except ConnectionClosed as exc:
            raise EngineError(f"{NAME} closed the connection mid-reply ({exc})") from None
        except (InvalidHandshake, InvalidURI) as exc:
            raise EngineError(f"{NAME} at {self.url} refused the websocket: {exc}") from None
        except OSError as exc:
            raise EngineError(f"cannot connect to {NAME} at {self.url} (is the server running?): {exc}") from None

    def _expect_created(self, ws: ClientConnection) -> None:
        event = self._receive(ws)
        if event.get("type") != "session.created":
            raise EngineError(f"{NAME} did not open a session: {json.dumps(event)[:200]}")

    def _events(self, ws: ClientConnection, cancel: threading.Event) -> Iterator[TextPiece | AudioPiece]:
        while not cancel.is_set():
            event = self._receive(ws)
            kind = event.get("type")
            if kind == "transcription.delta":
                if event.get("delta"):
                    yield TextPiece(str(event["delta"]))
            elif kind == "response.output_audio.delta":
                yield _pcm16_piece(event)
            elif kind == "response.output_audio.done":
                return
            elif kind != "transcription.done":
                log.debug("ignoring realtime event %s", kind)

    def _receive(self, ws: ClientConnection) -> dict[str, Any]:
        message = ws.recv(timeout=self.read_timeout)
        try:
            event = json.loads(message)
        except (json.JSONDecodeError, TypeError):
            raise EngineError(f"{NAME} sent a message that is not JSON: {str(message)[:200]!r}") from None
        if not isinstance(event, dict):
            raise EngineError(f"{NAME} sent unexpected JSON: {str(message)[:200]!r}")
        if event.get("type") == "error":
            code = event.get("code") or "error"
            raise EngineError(f"{NAME} reported {code}: {event.get('error', '(no message)')}")
        return event

    @staticmethod
    def _send(ws: ClientConnection, event: dict[str, Any]) -> None:
        ws.send(json.dumps(event))


def _pcm16_piece(event: dict[str, Any]) -> AudioPiece:
    try:
        raw = base64.b64decode(str(event.get("audio", "")), validate=True)
    except (binascii.Error, ValueError):
        raise EngineError(f"{NAME} sent audio that is not base64") from None
    if len(raw) % 2:
        raise EngineError(f"{NAME} sent PCM16 audio with an odd number of bytes ({len(raw)})")
    rate = int(event.get("sample_rate_hz") or 24_000)
    return AudioPiece(np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0, rate)
