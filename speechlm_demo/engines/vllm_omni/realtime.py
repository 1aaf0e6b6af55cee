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

One connection serves many turns. In those files the model check of ``session.update`` holds for the
connection (``_is_model_validated``), every generation is a task of its own started by a plain ``commit``
once the previous one is done (``start_generation``), and it ends by emptying the audio queue ("Clear queue
for next utterance"); ``response.output_audio.done`` is its last event, after which the task finishes
without waiting on anything but that send. So a connection whose reply ended with ``output_audio.done`` is
kept (at most :data:`KEEP_IDLE` of them, each for ``keep_idle_s``) and the next turn skips the TCP and
websocket handshakes and ``session.update``. A connection is never kept after an error event, a timeout or a
cancelled turn: the server goes on generating until the socket closes (``cleanup`` cancels the task), and
a commit sent meanwhile would be ignored ("Generation already in progress"). A kept connection that the
server or a proxy closed meanwhile is replaced once, before anything of the turn was read.

The websocket is ``websockets``' synchronous client (the engine's ``respond`` is a plain generator); the TCP
connection is opened here first so that a server that accepts nothing (connect timeout), one that accepts
but never answers the handshake, and one that stops sending mid-reply (read timeout) are told apart. A turn's
connection is opened (or taken from the kept ones) in a thread of its own, and its reads wait at most
:data:`CANCEL_POLL_S` at a time (a timed-out ``recv`` loses nothing in websockets 15: its frames go back to the
queue), so a barge-in while the server is quiet ends the turn at once, not at a connect or read timeout.
"""

from __future__ import annotations

import base64
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.protocol import State
from websockets.sync.client import ClientConnection, connect

from ...audio import to_int16
from ..base import EngineError
from ..read_aside import CANCEL_POLL_S, Aside
from .client import AudioPiece, TextPiece, pcm16_piece

log = logging.getLogger(__name__)

NAME = "the vLLM-Omni realtime server"
INPUT_RATE = 16_000
APPEND_SAMPLES = INPUT_RATE // 10  # 100 ms per append event
KEEP_IDLE = 2  # idle connections kept for later turns


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
    """Turns over ``/v1/realtime``: send the whole turn, read text and audio until ``output_audio.done``."""

    def __init__(
        self, base_url: str, model: str, *, connect_timeout: float = 5.0, read_timeout: float = 60.0, keep_idle_s: float = 240.0
    ) -> None:
        self.url = realtime_url(base_url)
        self.model = model
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keep_idle_s = keep_idle_s
        self.opened = 0  # connections opened so far
        self._idle: list[tuple[ClientConnection, float]] = []  # kept connections and when they went idle
        self._lock = threading.Lock()  # guards _idle and _closed only: never held while connecting
        self._closed = False

    def reply(self, audio_16k: np.ndarray, cancel: threading.Event) -> Iterator[TextPiece | AudioPiece]:
        """Stream one utterance (mono float32 at 16 kHz); yield the reply's text and audio pieces."""
        pcm = to_int16(audio_16k)
        with self._read_errors():
            opened = self._connect_aside(self._checkout, cancel)
            if opened is None:
                return
            ws, kept = opened
            finished = False
            try:
                try:
                    first = self._ask(ws, pcm, cancel)
                except ConnectionClosed:
                    if not kept:
                        raise
                    log.info("the kept realtime connection to %s had closed; opening a new one", self.url)
                    ws.close()
                    opened = self._connect_aside(lambda: (self._open(), False), cancel)
                    if opened is None:
                        return
                    ws = opened[0]
                    first = self._ask(ws, pcm, cancel)
                finished = yield from self._events(ws, first, cancel)
            finally:
                if finished:
                    self._checkin(ws)
                else:
                    ws.close()

    @contextmanager
    def _read_errors(self) -> Iterator[None]:
        """A reply that stops coming (read timeout) or a connection that drops, as :class:`EngineError`."""
        try:
            yield
        except TimeoutError:
            raise EngineError(f"{NAME} at {self.url} sent nothing for {self.read_timeout:g} s (read timeout)") from None
        except ConnectionClosed as exc:
            raise EngineError(f"{NAME} closed the connection mid-reply ({exc})") from None

    def close(self) -> None:
        """Close the kept connections; a turn still running closes its own when it ends."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for ws, _ in idle:
            ws.close()

    @staticmethod
    def _connect_aside(
        connect: Callable[[], tuple[ClientConnection, bool]], cancel: threading.Event
    ) -> tuple[ClientConnection, bool] | None:
        """``connect()`` in a thread of its own (a handshake or ``session.created`` a server never sends holds it up
        to its timeouts); None once ``cancel`` is set first: the connection, when it comes, is closed there."""
        opening = Aside("vllm-omni-realtime-connect", connect)
        if opening.wait(cancel):
            return opening.result()
        opening.abandon(lambda opened: opened[0].close())
        return None

    def _checkout(self) -> tuple[ClientConnection, bool]:
        """The newest kept connection that is open and not too old (True), else a new one (False)."""
        while True:
            with self._lock:
                kept = self._idle.pop() if self._idle else None
            if kept is None:
                return self._open(), False  # outside the lock: a slow server holds up no other turn
            ws, since = kept
            if ws.state is State.OPEN and time.monotonic() - since < self.keep_idle_s:
                return ws, True
            ws.close()

    def _checkin(self, ws: ClientConnection) -> None:
        """Keep ``ws`` for a later turn (the oldest kept one goes when there are too many)."""
        with self._lock:
            keep = self.keep_idle_s > 0 and not self._closed
            if keep:
                self._idle.append((ws, time.monotonic()))
            surplus, self._idle = self._idle[:-KEEP_IDLE], self._idle[-KEEP_IDLE:]
        if not keep:
            ws.close()  # reuse is off, or the client was closed while this turn ran
        for old, _ in surplus:
            old.close()

    def _open(self) -> ClientConnection:
        """Connect (TCP, then the websocket handshake) and validate the model for this connection."""
        parts = urlsplit(self.url)
        port = parts.port or (443 if parts.scheme == "wss" else 80)
        try:
            sock = socket.create_connection((parts.hostname, port), timeout=self.connect_timeout)
        except TimeoutError:
            raise EngineError(f"{NAME} at {self.url} did not accept the connection within {self.connect_timeout:g} s (connect timeout)") from None
        except OSError as exc:
            raise EngineError(f"cannot connect to {NAME} at {self.url} (is the server running?): {exc}") from None
        sock.settimeout(None)  # the handshake has its own timeout; reads have read_timeout
        try:
            ws = connect(self.url, sock=sock, open_timeout=self.connect_timeout, close_timeout=1.0, max_size=None)
        except TimeoutError:
            sock.close()
            raise EngineError(
                f"{NAME} at {self.url} accepted the connection but did not answer the websocket handshake within "
                f"{self.connect_timeout:g} s (busy or hung)"
            ) from None
        except (InvalidHandshake, InvalidURI) as exc:
            sock.close()
            raise EngineError(f"{NAME} at {self.url} refused the websocket: {exc}") from None
        except OSError as exc:
            sock.close()
            raise EngineError(f"{NAME} at {self.url} dropped the connection during the handshake: {exc}") from None
        self.opened += 1
        try:
            event = self._receive(ws)
            if event.get("type") != "session.created":
                raise EngineError(f"{NAME} did not open a session: {json.dumps(event)[:200]}")
            self._send(ws, {"type": "session.update", "model": self.model})
        except BaseException:
            ws.close()
            raise
        return ws

    def _ask(self, ws: ClientConnection, pcm: np.ndarray, cancel: threading.Event) -> dict[str, Any] | None:
        """Send the turn; the first event of the reply (None if ``cancel`` came first)."""
        self._send(ws, {"type": "input_audio_buffer.commit"})
        for start in range(0, len(pcm), APPEND_SAMPLES):
            piece = base64.b64encode(pcm[start : start + APPEND_SAMPLES].tobytes()).decode("ascii")
            self._send(ws, {"type": "input_audio_buffer.append", "audio": piece})
        self._send(ws, {"type": "input_audio_buffer.commit", "final": True})
        return self._receive(ws, cancel)

    def _events(
        self, ws: ClientConnection, event: dict[str, Any] | None, cancel: threading.Event
    ) -> Generator[TextPiece | AudioPiece, None, bool]:
        """The reply's pieces from ``event`` on; True when it ended with ``output_audio.done``."""
        while event is not None:
            kind = event.get("type")
            if kind == "transcription.delta":
                if event.get("delta"):
                    yield TextPiece(str(event["delta"]))
            elif kind == "response.output_audio.delta":
                yield pcm16_piece(event.get("audio"), event.get("sample_rate_hz"), NAME)
            elif kind == "response.output_audio.done":
                return True
            elif kind != "transcription.done":
                log.debug("ignoring realtime event %s", kind)
            event = self._receive(ws, cancel)
        return False

    def _receive(self, ws: ClientConnection, cancel: threading.Event | None = None) -> dict[str, Any] | None:
        """The next event (an error event raised); None as soon as ``cancel`` is set while waiting for it."""
        message = self._message(ws, cancel)
        if message is None:
            return None
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

    def _message(self, ws: ClientConnection, cancel: threading.Event | None) -> str | bytes | None:
        """The next message within ``read_timeout`` (else TimeoutError), looking at ``cancel`` meanwhile."""
        deadline = time.monotonic() + self.read_timeout
        while cancel is None or not cancel.is_set():
            left = deadline - time.monotonic()
            try:
                return ws.recv(timeout=max(0.0, left if cancel is None else min(left, CANCEL_POLL_S)))
            except TimeoutError:
                if time.monotonic() >= deadline:
                    raise
        return None

    @staticmethod
    def _send(ws: ClientConnection, event: dict[str, Any]) -> None:
        ws.send(json.dumps(event))
