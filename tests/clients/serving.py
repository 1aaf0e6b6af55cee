"""Run an aiohttp application on 127.0.0.1 in a thread, for the fake model servers of these tests.

``kill()`` behaves like the server process dying: the listening socket closes and every open connection
is cut without a goodbye (requests in flight see their stream end mid-reply).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

from aiohttp import web


class FakeHTTPServer:
    """``with FakeHTTPServer(app) as url:`` serves ``app`` at ``url`` (``http://127.0.0.1:PORT``)."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        self.transports: set[Any] = set()
        self.requests = 0
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-server", daemon=True)
        self._site: web.TCPSite | None = None
        app.middlewares.append(self._track)

    @web.middleware
    async def _track(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests += 1
        if request.transport is not None:
            self.transports.add(request.transport)
        return await handler(request)

    async def _start(self, port: int) -> int:
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        await self._runner.setup()
        self._site = web.TCPSite(self._runner, "127.0.0.1", port)
        await self._site.start()
        return self._site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def start(self, port: int = 0) -> str:
        """Serve; returns the base URL."""
        if not self._thread.is_alive():
            self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(port), self.loop).result(10)
        return f"http://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """Die: stop listening and cut every connection."""

        async def die() -> None:
            for transport in list(self.transports):
                transport.abort()
            self.transports.clear()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(die(), self.loop).result(10)

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        try:
            self.kill()
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


async def open_stream(request: web.Request, requests: list[dict]) -> tuple[dict, web.StreamResponse]:
    """Record the request's JSON body in ``requests`` and start a chunked streamed reply (as the servers'
    ``StreamingResponse`` does); returns the body and the prepared response to write to."""
    params = await request.json()
    requests.append(params)
    response = web.StreamResponse()
    response.enable_chunked_encoding()
    await response.prepare(request)
    return params, response
