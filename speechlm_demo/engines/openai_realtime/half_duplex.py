"""OpenAI Realtime with our turn layer: each committed turn is one ``response`` (server VAD off).

Per turn: open a websocket, ``session.update`` (``turn_detection: null``), the earlier turns' words as
conversation items, the turn's audio (``input_audio_buffer.append`` x N, ``commit``), ``response.create``;
then read ``response.output_audio.delta`` (24 kHz PCM16), the transcript deltas, the user's transcript,
and ``response.done`` (its ``usage`` lands in ``timeline.extra["usage"]`` with the cost). A fresh
connection per turn keeps a dead or replaced server from poisoning the session; so that its TLS handshake
is not part of the reply's latency, the next turn's connection is opened ahead (``warm_connection``;
an idle one older than ``warm_max_age_s`` is replaced).
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError
from contextlib import suppress
from typing import Any

from ...audio import chunks, resample
from ..base import AudioOut, Event, Mark, Progress, SessionOptions, TextOut, UserTurn
from ..fallback import ServerEngine
from ..server_client import ServerFailure
from . import SAMPLE_RATE, events
from .connection import (
    RealtimeConnection,
    RealtimeSettings,
    audio_delta,
    check_reachable,
    error_message,
    headers,
    realtime_url,
)
from .loop import LoopThread
from .usage import turn_usage

_END = object()
_POLL_S = 0.1
_CANCEL_GRACE_S = 3 * _POLL_S  # a reading turn sends response.cancel within _POLL_S of the cancel; this long, it is abandoned


class RealtimeEngine(ServerEngine):
    """``gpt-realtime`` / ``gpt-4o-realtime-preview`` answering turns our turn layer commits."""

    Settings = RealtimeSettings
    settings: RealtimeSettings
    _loop: LoopThread | None = None
    _spare: asyncio.Task[RealtimeConnection] | None = None  # the next turn's connection, opened ahead
    _spare_since = 0.0

    def connect(self, progress: Progress) -> None:
        """Check the URL, the key and that the host answers."""
        self.url = realtime_url(self.settings, self.entry.label)
        headers(self.settings, self.entry.label)
        if self._loop is None:
            self._loop = LoopThread(f"realtime-{self.id}")
        progress(0.3, f"checking {self.url.split('?')[0]}")
        check_reachable(self.url, self.settings.connect_timeout_s, self.entry.label)
        self._loop.submit(self._refill())

    def close(self) -> None:
        """Close the spare connection and stop the network thread."""
        if self._loop is not None:
            self._loop.submit(self._drop_spare()).result(timeout=10)
            self._loop.stop()
            self._loop = None
        self.loaded = False

    def respond_remote(self, turn: UserTurn, history: list[dict], options: SessionOptions) -> Iterator[Event]:
        """One response to ``turn``, streamed."""
        assert self._loop is not None
        out: queue.Queue[Any] = queue.Queue()
        stop = threading.Event()
        future = self._loop.submit(self._turn(turn, history, options, out.put, lambda: stop.is_set() or turn.cancel.is_set()))
        cancelled_at: float | None = None
        try:
            while True:
                try:
                    item = out.get(timeout=_POLL_S / 2)
                except queue.Empty:
                    if turn.cancel.is_set():
                        cancelled_at = cancelled_at or time.monotonic()
                        if time.monotonic() - cancelled_at > _CANCEL_GRACE_S:
                            future.cancel()  # still connecting or sending: abandoned, its socket closes on the loop
                            return
                    continue
                if item is _END:
                    break
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            with suppress(CancelledError):
                future.result(timeout=10)

    async def _turn(self, turn: UserTurn, history: list[dict], options: SessionOptions, put: Callable[[Any], None], stopped: Callable[[], bool]) -> None:
        try:
            conn, warm = await self._connection()
            try:
                if stopped():
                    return  # cancelled while connecting: nothing is sent, no response is started (or billed)
                await self._refill()
                try:
                    await self._ask(conn, turn, history, options)
                except ServerFailure:
                    if not warm:
                        raise
                    await conn.close()  # the spare went stale unseen (server restarted, idle timeout): once more
                    conn = await RealtimeConnection.open(self.url, self.settings, self.entry.label)
                    await self._ask(conn, turn, history, options)
                await self._read(conn, turn, history, put, stopped)
            finally:
                await conn.close()
        except BaseException as exc:  # noqa: BLE001 - handed to the reply thread, raised there
            put(exc)
        put(_END)

    async def _connection(self) -> tuple[RealtimeConnection, bool]:
        """The spare connection if it is fresh and open (True), else a new one (False)."""
        spare, self._spare = self._spare, None
        if spare is not None:
            try:
                conn = await spare
            except (ServerFailure, asyncio.CancelledError):
                conn = None
            if conn is not None:
                if not conn.ws.closed and time.monotonic() - self._spare_since < self.settings.warm_max_age_s:
                    return conn, True
                await conn.close()
        return await RealtimeConnection.open(self.url, self.settings, self.entry.label), False

    async def _refill(self) -> None:
        """Start opening the next turn's connection."""
        if self.settings.warm_connection and self._spare is None:
            self._spare_since = time.monotonic()
            self._spare = asyncio.ensure_future(RealtimeConnection.open(self.url, self.settings, self.entry.label))

    async def _drop_spare(self) -> None:
        spare, self._spare = self._spare, None
        if spare is None:
            return
        spare.cancel()
        results = await asyncio.gather(spare, return_exceptions=True)
        if isinstance(results[0], RealtimeConnection):
            await results[0].close()

    async def _ask(self, conn: RealtimeConnection, turn: UserTurn, history: list[dict], options: SessionOptions) -> None:
        s = self.settings
        beta = s.api == "beta"
        await conn.send(
            events.session_update(
                beta=beta,
                instructions=options.system_prompt or s.instructions,
                voice=options.voice or s.voice,
                turn_detection=None,
                transcription_model=s.transcription_model,
                sample_rate=SAMPLE_RATE,
                max_output_tokens=s.max_output_tokens,
            )
        )
        words = [m for m in history if isinstance(m.get("content"), str) and m.get("role") in ("user", "assistant")]
        for message in words[-2 * s.history_turns :] if s.history_turns else []:
            await conn.send(events.text_item(message["role"], message["content"], beta=beta))
        pcm = turn.audio if turn.sample_rate == SAMPLE_RATE else resample(turn.audio, turn.sample_rate, SAMPLE_RATE)
        for piece in chunks(pcm, max(1, SAMPLE_RATE * s.append_ms // 1000)):
            await conn.send(events.append_audio(piece))
        await conn.send(events.commit())
        await conn.send(events.response_create())

    async def _read(self, conn: RealtimeConnection, turn: UserTurn, history: list[dict], put: Callable[[Any], None], stopped: Callable[[], bool]) -> None:
        label = self.entry.label
        transcript, user_text = "", None
        done_at: float | None = None
        quiet_since = time.monotonic()
        cancelled = False
        while True:
            if stopped() and not cancelled:
                cancelled = True
                await conn.send(events.response_cancel())
                return
            if done_at is not None and (user_text is not None or time.monotonic() - done_at > self.settings.transcript_grace_s or not self.settings.transcription_model):
                break
            item = await conn.next_event(_POLL_S)
            if item is None:
                if done_at is None and time.monotonic() - quiet_since > self.settings.read_timeout_s:
                    raise ServerFailure(f"{label} sent nothing for {self.settings.read_timeout_s:g} s")
                continue
            quiet_since = time.monotonic()
            kind, event = item
            if kind == "error":
                raise ServerFailure(error_message(label, event))
            if kind == "response.output_audio.delta":
                put(AudioOut(audio_delta(label, event), SAMPLE_RATE))
            elif kind in ("response.output_audio_transcript.delta", "response.output_text.delta"):
                piece = str(event.get("delta", ""))
                if piece and not transcript:
                    put(Mark("llm_first_token"))
                transcript += piece
                if piece:
                    put(TextOut(piece, "agent", final=False))
            elif kind == "conversation.item.input_audio_transcription.completed":
                user_text = str(event.get("transcript", "")).strip()
                put(TextOut(user_text, "user"))
            elif kind == "response.done":
                done_at = time.monotonic()
                self._finish_response(turn, events.object_field(event, "response"))
        if transcript.strip():
            put(TextOut(transcript.strip(), "agent"))
        if user_text:
            history.append({"role": "user", "content": user_text})
        if transcript.strip():
            history.append({"role": "assistant", "content": transcript.strip()})

    def _finish_response(self, turn: UserTurn, response: dict[str, Any]) -> None:
        turn.timeline.extra["usage"] = turn_usage(response.get("usage"), self.settings.prices)
        status = response.get("status")
        details = events.object_field(response, "status_details")
        if status == "failed":
            error = events.object_field(details, "error")
            raise ServerFailure(f"{self.entry.label} failed the response: {error.get('message') or error.get('code') or details.get('reason') or 'no reason given'}")
        if status == "incomplete":
            reason = str(details.get("reason") or "")
            turn.timeline.extra["realtime_status"] = f"incomplete ({reason})" if reason else "incomplete"
