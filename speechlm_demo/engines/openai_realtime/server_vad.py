"""OpenAI Realtime with the server's VAD deciding turns: full duplex, barge-in by ``response.cancel`` and
``conversation.item.truncate``.

Each 80 ms input frame goes to the server as ``input_audio_buffer.append``; the server detects speech
(``input_audio_buffer.speech_started``/``stopped``), commits and answers by itself. When the user starts
speaking while reply audio is still playing, the session flushes playback (:class:`Interrupt`), cancels the
response and truncates the assistant item to what was heard, so the server's memory matches what the user
heard. The full-duplex base measures each user turn; each response's usage and cost go into the timeline of
the turn it answered. A dropped connection is reported and re-opened (``reconnect_attempts``, back-off
doubling from ``health_backoff_s``); there is no fallback engine in this mode.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import Any

import numpy as np

from ...turntaking.full_duplex import FullDuplexEngine, FullDuplexSession
from ..base import Emit, EngineError, ErrorEvent, Event, Progress, SessionOptions, TextOut, TurnEnd
from ..server_client import ServerFailure
from . import SAMPLE_RATE, events
from .connection import (
    RealtimeConnection,
    RealtimeVadSettings,
    audio_delta,
    check_reachable,
    error_message,
    headers,
    realtime_url,
)
from .loop import LoopThread
from .usage import turn_usage

log = logging.getLogger(__name__)
IGNORED_ERRORS = {"response_cancel_not_active"}  # a cancel racing the server's own interruption


class RealtimeServerVadEngine(FullDuplexEngine):
    """``gpt-realtime`` with ``turn_detection`` server_vad / semantic_vad."""

    Settings = RealtimeVadSettings
    settings: RealtimeVadSettings
    stream_rate = SAMPLE_RATE
    frame_size = SAMPLE_RATE * 80 // 1000  # one append per 80 ms
    _loop: LoopThread | None = None

    def _load(self, progress: Progress) -> None:
        self.url = realtime_url(self.settings, self.entry.label)
        headers(self.settings, self.entry.label)
        progress(0.3, f"checking {self.url.split('?')[0]}")
        try:
            check_reachable(self.url, self.settings.connect_timeout_s, self.entry.label)
        except ServerFailure as exc:
            raise EngineError(str(exc)) from exc
        self._loop = LoopThread(f"realtime-vad-{self.id}")

    def check_ready(self) -> None:
        """Sessions need the loaded client's network thread."""
        if self._loop is None:
            raise EngineError(f"{self.entry.label} is not loaded")

    def close(self) -> None:
        """Stop every session's connection."""
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        self.loaded = False


class RealtimeServerVadSession(FullDuplexSession):
    """Streams the user's frames; plays, transcribes and interrupts the server's replies."""

    engine: RealtimeServerVadEngine
    settings: RealtimeVadSettings
    time_steps = False  # a step only sends; the model's time is the server's

    def __init__(self, engine: RealtimeServerVadEngine, options: SessionOptions, emit: Emit) -> None:
        self._usages: deque[dict[str, Any]] = deque()
        self._usage_lock = threading.Lock()
        super().__init__(engine, options, self._with_usage(emit))
        self.connected = threading.Event()
        self.response_active = False
        self.item_id = ""  # the assistant item now playing
        self.item_started = 0.0  # when its first audio started playing
        self.item_ms = 0.0  # how much of its audio went to playback
        self.interruptions = 0
        self._closing = False
        self._outbox: asyncio.Queue[dict[str, Any] | None] | None = None
        assert engine._loop is not None
        self._loop = engine._loop
        self._task = self._loop.submit(self._run())

    # -- the full-duplex seam -----------------------------------------------------------------------------
    def accepting(self) -> bool:
        """Frames are wanted only while connected (not while reconnecting)."""
        return self.connected.is_set()

    def step(self, frame: np.ndarray) -> None:
        """Send one 80 ms frame."""
        self._send(events.append_audio(frame))

    def drain(self, deadline: float) -> None:
        """Wait for a response in progress to finish."""
        while self.response_active and time.monotonic() < deadline and not self._task.done():
            time.sleep(0.05)

    def stopping(self) -> None:
        """Close the websocket; nothing more is sent or emitted."""
        self._closing = True
        self._send(None)
        self._task.cancel()

    def _send(self, event: dict[str, Any] | None) -> None:
        if self._outbox is not None:
            self._loop.loop.call_soon_threadsafe(self._outbox.put_nowait, event)

    def _with_usage(self, emit: Emit) -> Emit:
        """``emit`` that puts the usage of the responses since the previous turn into each turn's timeline."""

        def forward(event: Event) -> None:
            if isinstance(event, TurnEnd):
                with self._usage_lock:
                    usages, self._usages = list(self._usages), deque()
                if usages:
                    total = {key: round(sum(u[key] for u in usages), 6) for key in usages[0]}
                    event.timeline.extra["usage"] = {**total, "responses": len(usages)}
            emit(event)

        return forward

    # -- the network thread -------------------------------------------------------------------------------
    async def _run(self) -> None:
        self._outbox = asyncio.Queue()
        wait, failures = self.settings.health_backoff_s, 0
        while not self._closing:
            try:
                conn = await RealtimeConnection.open(self.engine.url, self.settings, self.engine.entry.label)
            except ServerFailure as exc:
                failures += 1
                if failures > self.settings.reconnect_attempts:
                    self.fail(str(exc))
                    return
                self.emit(ErrorEvent(f"{exc}; trying again in {wait:g} s"))
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.settings.health_backoff_max_s)
                continue
            failures, wait = 0, self.settings.health_backoff_s
            try:
                await conn.send(self._session_update())
                self.connected.set()
                await self._serve(conn)
            except ServerFailure as exc:
                if not self._closing:
                    self.emit(ErrorEvent(f"{exc}; reconnecting"))
            finally:
                self.connected.clear()
                self.response_active = False
                await conn.close()

    async def _serve(self, conn: RealtimeConnection) -> None:
        tasks = [asyncio.ensure_future(self._writer(conn)), asyncio.ensure_future(self._reader(conn))]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()

    def _session_update(self) -> dict[str, Any]:
        s = self.settings
        if s.turn_detection == "semantic_vad":
            detection: dict[str, Any] = {"type": "semantic_vad", "eagerness": s.vad_eagerness}
        else:
            detection = {"type": "server_vad", "threshold": s.vad_threshold, "silence_duration_ms": s.vad_silence_ms, "prefix_padding_ms": s.vad_prefix_padding_ms}
        detection.update(create_response=True, interrupt_response=True)
        return events.session_update(
            beta=s.api == "beta", instructions=self.options.system_prompt or s.instructions, voice=self.options.voice or s.voice,
            turn_detection=detection, transcription_model=s.transcription_model, sample_rate=SAMPLE_RATE, max_output_tokens=s.max_output_tokens,
        )

    async def _writer(self, conn: RealtimeConnection) -> None:
        assert self._outbox is not None
        while True:
            event = await self._outbox.get()
            if event is None:
                raise ServerFailure("session closed")
            await conn.send(event)

    async def _reader(self, conn: RealtimeConnection) -> None:
        label = self.engine.entry.label
        while True:
            item = await conn.next_event(1.0)
            if item is None:
                continue
            kind, event = item
            if kind == "error":
                if events.object_field(event, "error").get("code") not in IGNORED_ERRORS:
                    self.emit(ErrorEvent(error_message(label, event)))
            elif kind == "input_audio_buffer.speech_started":
                await self._barge_in(conn)
            elif kind == "response.created":
                self.response_active = True
            elif kind == "response.output_audio.delta":
                self._play(str(event.get("item_id", "")), audio_delta(label, event))
            elif kind in ("response.output_audio_transcript.delta", "response.output_text.delta"):
                self.agent_text(str(event.get("delta", "")) or None)
            elif kind == "conversation.item.input_audio_transcription.completed":
                self.emit(TextOut(str(event.get("transcript", "")).strip(), "user"))
            elif kind == "response.done":
                self.agent_text(" ")  # the last word is complete
                with self._usage_lock:
                    self._usages.append(turn_usage(events.object_field(event, "response").get("usage"), self.settings.prices))
                self.response_active = False

    def _play(self, item_id: str, pcm: np.ndarray) -> None:
        played = self.agent_audio(pcm)  # placed on the session's one playback clock
        if item_id != self.item_id:
            self.item_id, self.item_ms, self.item_started = item_id, 0.0, played.start
        self.item_ms += len(pcm) * 1000 / SAMPLE_RATE

    async def _barge_in(self, conn: RealtimeConnection) -> None:
        """The user talks: stop what is playing or being generated, and tell the server what was heard."""
        playing = self.tracker.clock() < self.playback.end
        if not (playing or self.response_active):
            return
        self.interruptions += 1
        now = self.interrupt()
        if self.response_active:
            await conn.send(events.response_cancel())
        if self.item_id and playing:
            heard_ms = min(self.item_ms, max(0.0, (now - self.item_started) * 1000))
            await conn.send(events.truncate(self.item_id, int(heard_ms)))


RealtimeServerVadEngine.session_class = RealtimeServerVadSession
