"""A client of Kyutai's moshi-server (Rust ``moshi-server`` or Python ``moshi.server``) websocket protocol.

``GET /api/chat`` upgraded to a websocket; binary messages whose first byte is the kind: 0x00 handshake
(server first), 0x01 Ogg/Opus audio (24 kHz mono, both ways, via ``sphn``), 0x02 text piece, 0x03 control,
0x04 metadata (JSON), 0x05 error, 0x06 ping. Each session runs in the engine's asyncio thread (aiohttp).
A dropped connection is reported and retried with back-off; a server that falls behind real time gets input
frames dropped (and reported) instead of a growing backlog; malformed messages are reported, not fatal. The
server answers each 80 ms input frame with an output frame once the handshake is done (moshi 0.2.13
``server.py``, ``recv_loop``), so a server that sends nothing for ``silence_timeout_s`` while sent audio is
unanswered has stopped answering: it is reported and reconnected like a dropped connection. A connection
counts as working again only once it has answered ``healthy_after_s`` of audio: a server that answers a frame
or two after each reconnect and fails again uses up ``reconnect_attempts`` like one that never answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import socket
import threading
import time
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import numpy as np
import sphn

from ...turntaking.duplex_stream import DropReporter
from ...turntaking.full_duplex import FullDuplexEngine, FullDuplexSession
from ..base import Emit, EngineError, ErrorEvent, Progress, SessionOptions
from ..server_address import resolve_url
from . import FRAME_S, FRAME_SIZE, SAMPLE_RATE
from .settings import MoshiRemoteSettings

log = logging.getLogger(__name__)

EXAMPLE_URL = "ws://gpu-box:8998/api/chat"
KIND_HANDSHAKE, KIND_AUDIO, KIND_TEXT, KIND_CONTROL, KIND_METADATA, KIND_ERROR, KIND_PING = range(7)
UNANSWERED_S = 6 * FRAME_S  # more unanswered audio than a healthy server holds (drain() waits for 3 frames)
SILENCE_POLL_S = 0.5  # how often a quiet connection is checked


class ProtocolError(RuntimeError):
    """The peer does not speak the moshi-server protocol (retrying will not help)."""


class ServerStoppedAnswering(RuntimeError):
    """The connection is open but the server answers no audio (retried like a dropped connection)."""


def chat_url(url: str) -> str:
    """``http(s)://host:port[/path]`` or ``ws(s)://...`` to the websocket URL (default path /api/chat)."""
    parts = urlsplit(resolve_url(url, None, "moshi-server", websocket=True, example=EXAMPLE_URL))
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/api/chat", parts.query, ""))


class MoshiRemoteEngine(FullDuplexEngine):
    """Talks to a moshi-server; the URL comes from ``$MOSHI_SERVER_URL`` or the catalogue's ``defaults.url``."""

    Settings = MoshiRemoteSettings
    settings: MoshiRemoteSettings
    stream_rate = SAMPLE_RATE
    frame_size = FRAME_SIZE
    loop: asyncio.AbstractEventLoop

    def _load(self, progress: Progress) -> None:
        self.url = chat_url(self.settings.server_url(self.entry.label, websocket=True, example=EXAMPLE_URL))
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        progress(0.3, f"checking {self.url}")
        try:
            socket.create_connection((parts.hostname, port), timeout=self.settings.connect_timeout_s).close()
        except OSError as exc:
            raise EngineError(f"cannot reach the Moshi server at {self.url}: {exc}") from exc
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=f"moshi-remote-{self.id}", daemon=True)
        self._thread.start()

    def check_ready(self) -> None:
        """A conversation goes over one websocket (reconnected if it drops) from the loaded client."""
        if not self.loaded:
            raise EngineError("the Moshi client is not loaded")

    def close(self) -> None:
        """Cancel every session's connection and stop the network thread."""
        if not self.loaded:
            return

        async def shutdown() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shutdown(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()
        self.loaded = False


class MoshiRemoteSession(FullDuplexSession):
    """One conversation with a moshi-server: each frame is sent as Ogg/Opus; what comes back is published."""

    engine: MoshiRemoteEngine
    settings: MoshiRemoteSettings
    time_steps = False  # a step only sends; the model's time is the server's
    _reader: sphn.OpusStreamReader  # one per connection

    def __init__(self, engine: MoshiRemoteEngine, options: SessionOptions, emit: Emit) -> None:
        super().__init__(engine, options, emit)
        self.handshake_timeout_s = self.settings.handshake_timeout_s
        self.reconnect_attempts = self.settings.reconnect_attempts
        self.reconnect_backoff_s = self.settings.reconnect_backoff_s
        self.healthy_after_s = self.settings.healthy_after_s
        self.max_lag_s = self.settings.max_lag_s
        self.silence_timeout_s = self.settings.silence_timeout_s
        self.drops = DropReporter(f"The Moshi server at {engine.url}", frame_ms=FRAME_S * 1000)  # it lags, not the client
        self._owed_since: float | None = None  # when audio was sent after the server's last answer
        self.connections = 0
        self.garbage = 0
        self.sent_s = self.received_s = 0.0
        self.connected = threading.Event()
        self._closing = False
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._writer: sphn.OpusStreamWriter | None = None
        self._task = asyncio.run_coroutine_threadsafe(self._run(), engine.loop)

    def accepting(self) -> bool:
        """Nobody listens while (re)connecting."""
        return self.connected.is_set() and not self._task.done()

    def step(self, frame: np.ndarray) -> None:
        """Send one frame (dropped, and reported, while the server lags more than ``max_lag_s`` behind)."""
        if self.sent_s - self.received_s > self.max_lag_s:
            self.report_drop()
            return
        try:
            asyncio.run_coroutine_threadsafe(self._send(frame), self.engine.loop).result(self.handshake_timeout_s)
        except (aiohttp.ClientError, OSError, TimeoutError, RuntimeError, concurrent.futures.CancelledError) as exc:
            log.info("a frame was not sent to the Moshi server (%s); the connection is being handled", exc)

    def drain(self, deadline: float) -> None:
        """Wait for the reply audio to catch up with what was sent."""
        while not self._task.done() and self.received_s < self.sent_s - 3 * FRAME_S and time.monotonic() < deadline:
            time.sleep(0.05)

    def stopping(self) -> None:
        """Close the websocket; nothing more is sent or emitted."""
        self._closing = True
        self._task.cancel()

    async def _send(self, frame: np.ndarray) -> None:
        ws, writer = self._ws, self._writer
        if ws is None or writer is None or ws.closed:
            return
        packet = writer.append_pcm(frame)
        self.sent_s += FRAME_S
        if self._owed_since is None:
            self._owed_since = time.monotonic()
        if packet:
            await ws.send_bytes(bytes([KIND_AUDIO]) + packet)

    async def _run(self) -> None:
        failures = 0
        brief = False  # a connection of this run of failures answered some audio, but less than healthy_after_s
        try:
            async with aiohttp.ClientSession() as http:
                while not self._closing:
                    try:
                        await self._converse(http)
                        reason = "The Moshi server closed the connection"
                    except ProtocolError as exc:
                        self.fail(f"{self.engine.url} does not speak the Moshi protocol: {exc}")
                        return
                    except ServerStoppedAnswering as exc:
                        reason = str(exc)
                    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                        reason = f"Lost the Moshi server at {self.engine.url} ({type(exc).__name__}: {exc})"
                    self.connected.clear()
                    self.frames.clear()
                    if self._closing:
                        return
                    if self.received_s >= self.healthy_after_s:
                        failures, brief = 0, False
                    else:
                        failures, brief = failures + 1, brief or self.received_s > 0
                    if failures > self.reconnect_attempts:
                        self.fail(f"{reason}; gave up after {self.reconnect_attempts} attempts{self._why_brief(brief)}.")
                        return
                    self.emit(ErrorEvent(f"{reason}; reconnecting..."))
                    await asyncio.sleep(self.reconnect_backoff_s * 2 ** max(0, failures - 1))
        finally:
            self.connected.clear()

    def _why_brief(self, brief: bool) -> str:
        """The give-up message's reason when connections did answer, but too little to count as working."""
        if not brief:
            return ""
        return f" (no connection answered {self.healthy_after_s:g} s of audio before it failed)"

    async def _converse(self, http: aiohttp.ClientSession) -> None:
        self.sent_s = self.received_s = 0.0
        self._owed_since = None
        ws = await asyncio.wait_for(http.ws_connect(self.engine.url, max_msg_size=0), self.handshake_timeout_s)
        try:
            first = await asyncio.wait_for(ws.receive(), self.handshake_timeout_s)
            if first.type != aiohttp.WSMsgType.BINARY or first.data[:1] != bytes([KIND_HANDSHAKE]):
                raise ProtocolError(f"expected the 0x00 handshake first, got {_describe(first)}")
            self.connections += 1
            self.frames.clear()
            self._reader = sphn.OpusStreamReader(SAMPLE_RATE)
            self._ws, self._writer = ws, sphn.OpusStreamWriter(SAMPLE_RATE)
            self.connected.set()
            log.info("connected to %s (connection %d)", self.engine.url, self.connections)
            await self._receive(ws)
        finally:
            self._ws = self._writer = None
            await ws.close()

    async def _receive(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            try:
                message = await ws.receive(timeout=SILENCE_POLL_S)
            except TimeoutError:
                self._check_answering()
                continue
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return
            if message.type == aiohttp.WSMsgType.BINARY and message.data:
                self._on_binary(message.data)
            elif message.type == aiohttp.WSMsgType.ERROR:
                raise aiohttp.ClientError(str(ws.exception()))
            else:
                self._garbage(_describe(message))
            self._check_answering()

    def _check_answering(self) -> None:
        """Raise :class:`ServerStoppedAnswering` once audio sent ``silence_timeout_s`` ago is still unanswered."""
        owed = self._owed_since
        unanswered = self.sent_s - self.received_s
        if owed is None or unanswered <= min(UNANSWERED_S, self.max_lag_s):
            return
        if time.monotonic() - owed > self.silence_timeout_s:
            raise ServerStoppedAnswering(
                f"The Moshi server at {self.engine.url} stopped answering (no audio for {self.silence_timeout_s:g} s "
                f"while {unanswered:.1f} s of your audio waited)"
            )

    def _on_binary(self, data: bytes) -> None:
        kind, payload = data[0], data[1:]
        if kind == KIND_AUDIO:
            try:
                pcm = np.asarray(self._reader.append_bytes(payload), dtype=np.float32).reshape(-1)
            except Exception as exc:  # noqa: BLE001 - sphn raises several types for bad Ogg pages
                self._reader = sphn.OpusStreamReader(SAMPLE_RATE)  # a bad page poisons the reader; a fresh one resyncs
                self._garbage(f"undecodable audio ({exc})")
                return
            if len(pcm):
                self.received_s += len(pcm) / SAMPLE_RATE
                self._owed_since = None
                self.agent_audio(pcm)
                self.agent_text(None)
        elif kind == KIND_TEXT:
            self._owed_since = None
            self.agent_text(payload.decode("utf-8", errors="replace"))
        elif kind == KIND_ERROR:
            self.emit(ErrorEvent(f"Moshi server error: {payload.decode('utf-8', errors='replace')}"))
        elif kind == KIND_METADATA:
            log.info("moshi-server metadata: %s", payload[:500].decode("utf-8", errors="replace"))
        elif kind not in (KIND_HANDSHAKE, KIND_CONTROL, KIND_PING):
            self._garbage(f"unknown message kind 0x{kind:02x}")

    def _garbage(self, what: str) -> None:
        self.garbage += 1
        log.warning("ignored %s from the Moshi server", what)
        if self.garbage in (1, 10, 100) or self.garbage % 1000 == 0:
            self.emit(ErrorEvent(f"Ignored {self.garbage} malformed message(s) from the Moshi server (last: {what})."))


def _describe(message: aiohttp.WSMessage) -> str:
    if message.type == aiohttp.WSMsgType.BINARY:
        return f"binary {bytes(message.data[:8])!r}" if message.data else "an empty message"
    return f"a {message.type.name} message"


MoshiRemoteEngine.session_class = MoshiRemoteSession
