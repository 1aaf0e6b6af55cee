"""A fake Mini-Omni / Mini-Omni2 server on 127.0.0.1, byte-faithful to the real one.

Matched: gpt-omni/mini-omni@26c31d5b33e7942080d40a1d63e1a024a263e8fb ``server.py`` (``OmniChatServer.chat``:
raw int16 PCM, ``mimetype="audio/wav"``; a failure in the view returns None -> Flask's HTML 500) and
gpt-omni/mini-omni2@75f450ea4e7dc1e52a7fc0e4dcf45b4c3d45ab98 ``server.py`` (``generator``: the
``\\r\\n--frame\\r\\n`` parts, no closing boundary; ``Response("An error occurred", status=500)``).
Both run ``Flask.run(threaded=False)``: werkzeug 3.1 ``serving.py`` then answers HTTP/1.0 with
``Connection: close`` and no Content-Length (the body ends when the socket closes: a crash mid-reply
looks like the end of the reply), and serves one connection at a time (a second client waits unanswered).
A raw asyncio server, because those HTTP/1.0 bytes are the point.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import threading
from email.utils import formatdate

import numpy as np
import soundfile as sf

FLASK_500 = (
    b"<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n<h1>Internal Server Error</h1>\n"
    b"<p>The server encountered an internal error and was unable to complete your request. Either the server is "
    b"overloaded or there is an error in the application.</p>\n"
)

FLASK_404 = (
    b"<!doctype html>\n<html lang=en>\n<title>404 Not Found</title>\n<h1>Not Found</h1>\n<p>The requested URL was "
    b"not found on the server. If you entered the URL manually please check your spelling and try again.</p>\n"
)


def tone_pcm(seconds: float, freq: float = 330.0, level: float = 0.3) -> bytes:
    """int16 PCM at 24 kHz, as ``generate_audio_data`` yields it."""
    t = np.arange(int(seconds * 24_000)) / 24_000
    return (level * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes()


class FakeMiniOmni:
    """``behaviour``: answer | error | die | garbage | hang | stall (two steps, then nothing until
    :meth:`resume`, the connection kept open). ``chunks`` steps of ``chunk_s`` audio each."""

    def __init__(self, variant: str = "mini-omni", behaviour: str = "answer", chunks: int = 4, chunk_s: float = 0.2) -> None:
        self.variant, self.behaviour, self.chunks, self.chunk_s = variant, behaviour, chunks, chunk_s
        self.words = ["Paris ", "is ", "the ", "capital."]
        self.received: list[dict] = []
        self.release = asyncio.Event()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="fake-mini-omni", daemon=True)
        self._busy = asyncio.Lock()
        self._writers: set[asyncio.StreamWriter] = set()

    def _head(self, status: str, content_type: str, extra: str = "") -> bytes:
        return (
            f"HTTP/1.0 {status}\r\nServer: Werkzeug/3.1.3 Python/3.10.12\r\nDate: {formatdate(usegmt=True)}\r\n"
            f"Content-Type: {content_type}\r\n{extra}Connection: close\r\n\r\n"
        ).encode()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            async with self._busy:  # threaded=False: the next connection waits for this one
                await self._answer(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _answer(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"POST /chat "):  # the app has one route
            writer.write(self._head("404 NOT FOUND", "text/html; charset=utf-8", f"Content-Length: {len(FLASK_404)}\r\n") + FLASK_404)
            return
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        body = json.loads(await reader.readexactly(length))
        audio, rate = sf.read(io.BytesIO(base64.b64decode(body["audio"])), dtype="float32")
        self.received.append({**body, "audio_s": len(audio) / rate, "rate": rate})
        if self.behaviour == "hang":
            await self.release.wait()
        if self.behaviour == "error":
            if self.variant == "mini-omni":
                writer.write(self._head("500 INTERNAL SERVER ERROR", "text/html; charset=utf-8", f"Content-Length: {len(FLASK_500)}\r\n") + FLASK_500)
            else:
                message = b"An error occurred"
                writer.write(self._head("500 INTERNAL SERVER ERROR", "text/html; charset=utf-8", f"Content-Length: {len(message)}\r\n") + message)
            return
        if self.behaviour == "garbage":
            writer.write(self._head("200 OK", "text/html; charset=utf-8") + b"<html>captive portal</html>")
            return
        kind = "audio/wav" if self.variant == "mini-omni" else "multipart/x-mixed-replace; boundary=frame"
        writer.write(self._head("200 OK", kind))
        for step in range(self.chunks):
            if self.behaviour == "die" and step == 2:
                writer.transport.abort()
                return
            if self.behaviour == "stall" and step == 2:
                await self.release.wait()  # the generator stuck mid-reply: Flask serves no one else meanwhile
            pcm = tone_pcm(self.chunk_s, 300 + 40 * step)
            if self.variant == "mini-omni":
                writer.write(pcm)
            else:
                text = self.words[step] if step < len(self.words) else ""
                writer.write(b"\r\n--frame\r\n" + b"Content-Type: audio/wav\r\n\r\n" + pcm)
                writer.write(b"\r\n--frame\r\n" + b"Content-Type: text/plain\r\n\r\n" + text.encode())
            await writer.drain()
            await asyncio.sleep(0.02)

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self._server.sockets[0].getsockname()[1]

    def __enter__(self) -> str:
        self._thread.start()
        self.port = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return f"http://127.0.0.1:{self.port}"

    def resume(self) -> None:
        """A hung request goes on (a client that gave up is gone by then; the next one is served)."""
        self.loop.call_soon_threadsafe(self.release.set)

    def kill(self) -> None:
        """The server process dies: stop listening, cut open connections."""

        async def die() -> None:
            self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            self.release.set()

        asyncio.run_coroutine_threadsafe(die(), self.loop).result(10)

    def __exit__(self, *exc: object) -> None:
        self.kill()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
