"""A scripted websocket server on 127.0.0.1 (aiohttp.web in a thread) to test the Moshi client's fault handling."""

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
