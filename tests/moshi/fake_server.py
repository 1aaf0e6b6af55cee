"""A scripted websocket server on 127.0.0.1 (aiohttp.web in a thread) to test the Moshi client's fault handling.

:func:`answer_frames` answers as moshi 0.2.13 ``moshi/server.py`` (``ServerState.recv_loop``) does: one 80 ms
Ogg/Opus output frame (kind 0x01) per 80 ms of input audio decoded."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable

import numpy as np
import sphn
from aiohttp import web

Script = Callable[[web.WebSocketResponse, int], Awaitable[None]]


def opus_packets(seconds: float, level: float = 0.3) -> list[bytes]:
    """Kind-0x01 messages carrying a tone as Ogg/Opus pages, 80 ms per frame."""
    writer = sphn.OpusStreamWriter(24_000)
    t = np.arange(1920) / 24_000
    frame = (level * np.sin(2 * np.pi * 200 * t)).astype(np.float32)
    packets = [writer.append_pcm(frame) for _ in range(int(seconds / 0.08))]
    return [b"\x01" + p for p in packets if p]


class FakeServer:
    """Runs ``script(ws, connection_number)`` for each websocket connection to /api/chat."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.connections = 0
        self.received: list[bytes] = []
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    async def _handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        await self.script(ws, self.connections)
        await ws.close()
        return ws

    async def _start(self) -> int:
        app = web.Application()
        app.router.add_get("/api/chat", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def __enter__(self) -> str:
        self._thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return f"ws://127.0.0.1:{port}/api/chat"

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


async def drain(ws: web.WebSocketResponse, seconds: float, sink: list[bytes] | None = None) -> None:
    """Read what the client sends for ``seconds`` (or until it closes)."""
    try:
        async with asyncio.timeout(seconds):
            async for message in ws:
                if sink is not None and message.type.name == "BINARY":
                    sink.append(message.data)
    except TimeoutError:
        pass


async def answer_frames(ws: web.WebSocketResponse, limit: int | None = None) -> int:
    """Answer each 80 ms input frame with an 80 ms tone frame until ``limit`` frames are answered (None: until
    the client closes); returns how many were. The caller then drops the connection or goes silent."""
    reader, writer = sphn.OpusStreamReader(24_000), sphn.OpusStreamWriter(24_000)
    pending = answered = 0
    async for message in ws:
        if message.type.name != "BINARY" or message.data[:1] != b"\x01":
            continue
        pending += len(np.asarray(reader.append_bytes(message.data[1:]), np.float32).reshape(-1))
        while pending >= 1920:
            if limit is not None and answered >= limit:
                return answered
            pending -= 1920
            t = np.arange(answered * 1920, (answered + 1) * 1920) / 24_000
            packet = writer.append_pcm((0.3 * np.sin(2 * np.pi * 200 * t)).astype(np.float32))
            answered += 1
            if packet:
                await ws.send_bytes(b"\x01" + packet)
    return answered
