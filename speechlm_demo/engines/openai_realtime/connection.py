"""One Realtime websocket (aiohttp): open it with clear failures, send events, read events.

Settings shared by both modes live here too (:class:`RealtimeSettings`).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import aiohttp
import numpy as np
from pydantic import Field

from ...turntaking.full_duplex import FullDuplexSettings
from ..base import EngineError
from ..server_address import ServerConnection
from ..server_client import HealthBackoff, ServerFailure, ServerSettings
from .events import decode_audio_delta, ga_name, object_field
from .usage import Prices


class RealtimeFields(ServerConnection):
    """What both Realtime modes read from the catalogue's ``defaults``."""

    model: str = "gpt-realtime"
    url: str = "wss://api.openai.com/v1/realtime"
    url_env: str = "OPENAI_REALTIME_URL"
    api_key_env: str = "OPENAI_API_KEY"
    api: Literal["ga", "beta"] = "ga"
    auth: Literal["bearer", "api-key"] = Field("bearer", description="api-key: Azure's header")
    voice: str | None = None
    instructions: str | None = None
    transcription_model: str | None = "gpt-4o-mini-transcribe"
    max_output_tokens: int | None = None
    prices: Prices = Field(default_factory=Prices)


class RealtimeSettings(ServerSettings, RealtimeFields):
    """Settings of the half-duplex Realtime engine (our turn layer commits; a fallback engine)."""

    url: str = "wss://api.openai.com/v1/realtime"
    url_env: str = "OPENAI_REALTIME_URL"
    append_ms: int = Field(100, ge=10, le=5000, description="audio per input_audio_buffer.append")
    history_turns: int = Field(10, ge=0, description="earlier turns' words sent along")
    transcript_grace_s: float = Field(1.0, ge=0, description="wait after response.done for the user's transcript")
    warm_connection: bool = Field(True, description="open the next turn's websocket ahead")
    warm_max_age_s: float = Field(240.0, gt=0, description="an idle spare connection older than this is replaced")


class RealtimeVadSettings(FullDuplexSettings, RealtimeFields, HealthBackoff):
    """Settings of the server-VAD Realtime engine (full duplex; our turn knobs only measure)."""

    url: str = "wss://api.openai.com/v1/realtime"
    url_env: str = "OPENAI_REALTIME_URL"
    turn_detection: Literal["server_vad", "semantic_vad"] = "server_vad"
    vad_threshold: float = Field(0.5, ge=0, le=1)
    vad_silence_ms: int = Field(500, ge=0)
    vad_prefix_padding_ms: int = Field(300, ge=0)
    vad_eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    reconnect_attempts: int = Field(3, ge=0, description="re-opens of a dropped connection before giving up")


def realtime_url(settings: RealtimeFields, label: str) -> str:
    """The websocket URL (``$url_env`` or ``url``; http(s) becomes ws(s)), with ``?model=`` added if absent."""
    parts = urlsplit(settings.server_url(label, websocket=True, example="wss://api.openai.com/v1/realtime"))
    query = dict(parse_qsl(parts.query))
    if "model" not in query and "deployment" not in query:
        query["model"] = settings.model
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), ""))


def headers(settings: RealtimeFields, label: str) -> dict[str, str]:
    """Authentication (and the beta header)."""
    key = os.environ.get(settings.api_key_env, "")
    if not key:
        raise EngineError(f"{label}: set {settings.api_key_env} to your API key")
    out = {"api-key": key} if settings.auth == "api-key" else {"Authorization": f"Bearer {key}"}
    if settings.api == "beta":
        out["OpenAI-Beta"] = "realtime=v1"
    return out


def check_reachable(url: str, timeout_s: float, label: str) -> None:
    """A TCP connection to the server's host (costs nothing at the provider)."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        socket.create_connection((parts.hostname, port), timeout=timeout_s).close()
    except OSError as exc:
        raise ServerFailure(f"{label} at {parts.hostname}:{port} is unreachable: {exc}") from exc


class RealtimeConnection:
    """An open websocket; :meth:`events` yields ``(GA event name, event)``."""

    def __init__(self, http: aiohttp.ClientSession, ws: aiohttp.ClientWebSocketResponse, label: str) -> None:
        self.http, self.ws, self.label = http, ws, label

    @classmethod
    async def open(cls, url: str, settings: RealtimeFields, label: str) -> RealtimeConnection:
        """Connect; a refusal, an unreachable host, a host that accepts no connection in time (connect timeout)
        and one that accepts but does not answer the handshake are each a :class:`ServerFailure` that says which."""
        wait = settings.connect_timeout_s
        http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=wait, sock_read=wait))
        where = f"{label} at {urlsplit(url).netloc}"
        try:  # sock_read bounds the handshake only: aiohttp lifts it once the websocket is open (ws_receive unset)
            ws = await http.ws_connect(
                url, headers=headers(settings, label), timeout=aiohttp.ClientWSTimeout(ws_close=2.0), max_msg_size=16 * 1024 * 1024
            )
        except aiohttp.WSServerHandshakeError as exc:
            await http.close()
            raise ServerFailure(_refusal(label, exc.status, exc.message)) from exc
        except aiohttp.ConnectionTimeoutError as exc:
            await http.close()
            raise ServerFailure(f"{where} did not accept the connection within {wait:g} s (connect timeout)") from exc
        except TimeoutError as exc:
            await http.close()
            raise ServerFailure(f"{where} accepted the connection but did not answer the websocket handshake within {wait:g} s (busy or hung)") from exc
        except (aiohttp.ClientError, OSError) as exc:
            await http.close()
            raise ServerFailure(f"{where} is unreachable: {str(exc) or type(exc).__name__}") from exc
        except BaseException:
            await http.close()
            raise
        return cls(http, ws, label)

    async def send(self, event: dict[str, Any]) -> None:
        """Send one client event."""
        try:
            await self.ws.send_str(json.dumps(event))
        except (aiohttp.ClientError, ConnectionError, RuntimeError) as exc:
            raise ServerFailure(f"{self.label} connection broke while sending: {exc}") from exc

    async def next_event(self, timeout_s: float) -> tuple[str, dict[str, Any]] | None:
        """The next server event, or None if none came within ``timeout_s``."""
        try:
            message = await asyncio.wait_for(self.ws.receive(), timeout_s)
        except TimeoutError:
            return None
        if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
            code = self.ws.close_code
            raise ServerFailure(f"{self.label} closed the connection (code {code}){': ' + message.extra if message.extra else ''}")
        if message.type == aiohttp.WSMsgType.ERROR:
            raise ServerFailure(f"{self.label} connection failed: {message.data}")
        if message.type != aiohttp.WSMsgType.TEXT:
            raise ServerFailure(f"{self.label} sent a {message.type.name} message; Realtime events are JSON text")
        try:
            event = json.loads(message.data)
            kind = event["type"]
        except (ValueError, KeyError, TypeError):
            raise ServerFailure(f"{self.label} sent something that is not a Realtime event: {str(message.data)[:80]!r}") from None
        return ga_name(str(kind)), event

    async def events(self, timeout_s: float) -> AsyncIterator[tuple[str, dict[str, Any]] | None]:
        """Server events; None every ``timeout_s`` of silence (the caller decides how long is too long)."""
        while True:
            yield await self.next_event(timeout_s)

    async def close(self) -> None:
        """Close the websocket and its HTTP session."""
        try:
            await self.ws.close()
        finally:
            await self.http.close()


def _refusal(label: str, status: int, message: str) -> str:
    why = {
        401: "the API key was refused",
        403: "this key may not use this model",
        404: "unknown model or wrong URL",
        429: "rate-limited or out of quota",
    }.get(status, "the server refused the connection")
    return f"{label} refused the connection: HTTP {status} ({why}){': ' + message if message else ''}"


def error_message(label: str, event: dict[str, Any]) -> str:
    """A server ``error`` event, readable."""
    error = object_field(event, "error")
    code = error.get("code") or error.get("type") or "error"
    return f"{label} reported an error ({code}): {error.get('message') or 'no message'}"


def audio_delta(label: str, event: dict[str, Any]) -> np.ndarray:
    """The samples of a ``response.output_audio.delta`` event; anything but base64 PCM16 is a :class:`ServerFailure`."""
    try:
        return decode_audio_delta(event.get("delta", ""))
    except (ValueError, TypeError) as exc:
        raise ServerFailure(f"{label} sent audio that is not base64 PCM16: {exc}") from exc
