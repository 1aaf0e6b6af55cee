"""OpenAI Realtime with the server's VAD deciding turns: full duplex, barge-in by ``response.cancel`` and
``conversation.item.truncate``.

The user's audio streams to the server continuously (``input_audio_buffer.append`` every ``append_ms``);
the server detects speech (``input_audio_buffer.speech_started``/``stopped``), commits and answers by
itself. When the user starts speaking while reply audio is still playing, the session flushes playback
(:class:`Interrupt`), cancels the response and truncates the assistant item to what was heard, so the
server's memory matches what the user heard. Per-turn timelines come from our own turn tracker (measuring
only, as for Moshi); each response's usage and cost go into the timeline of the turn it answered.

Built on :class:`EngineSession` directly: it must move onto the seam's full-duplex base
(``speechlm_demo.turntaking.full_duplex``) once that exists. A dropped connection is reported and
re-opened (``reconnect_attempts``, back-off doubling from ``health_backoff_s``); there is no fallback engine
in this mode.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import TYPE_CHECKING, Any

import numpy as np

from ..base import (
    AudioOut,
    Emit,
    Engine,
    EngineError,
    EngineSession,
    ErrorEvent,
    Event,
    Interrupt,
    Progress,
    SessionOptions,
    TextOut,
    TurnEnd,
)
from ..moshi.turn_marks import DuplexTurnTracker
from ..server_client import ServerFailure
from . import SAMPLE_RATE, events
from .connection import RealtimeConnection, RealtimeSettings, check_reachable, error_message, headers, realtime_url
from .loop import LoopThread
from .usage import turn_usage

if TYPE_CHECKING:
    from ...catalog import EngineEntry

log = logging.getLogger(__name__)
IGNORED_ERRORS = {"response_cancel_not_active"}  # a cancel racing the server's own interruption


class RealtimeServerVadEngine(Engine):
    """``gpt-realtime`` with ``turn_detection`` server_vad / semantic_vad."""

    Settings = RealtimeSettings
    settings: RealtimeSettings

    def __init__(self, entry: EngineEntry, device: str = "cpu") -> None:
        super().__init__(entry, device)
        try:
            self.settings = self.Settings.model_validate(entry.defaults)
        except Exception as exc:
            raise EngineError(f"{entry.id}: bad defaults in the catalogue: {exc}") from exc
        self.reconnect_attempts = 3
        self._loop: LoopThread | None = None

    def _load(self, progress: Progress) -> None:
        self.url = realtime_url(self.settings, self.entry.label)
        headers(self.settings, self.entry.label)
        progress(0.3, f"checking {self.url.split('?')[0]}")
        try:
            check_reachable(self.url, self.settings.connect_timeout_s, self.entry.label)
        except ServerFailure as exc:
            raise EngineError(str(exc)) from exc
        self._loop = LoopThread(f"realtime-vad-{self.id}")

    def open_session(self, options: SessionOptions, emit: Emit) -> RealtimeServerVadSession:
        """A conversation over one websocket."""
        if self._loop is None:
            raise EngineError(f"{self.entry.label} is not loaded")
        return RealtimeServerVadSession(self, options, emit)

    def close(self) -> None:
        """Stop every session's connection."""
        if self._loop is not None:
            self._loop.stop()
            self._loop = None
        self.loaded = False


class RealtimeServerVadSession(EngineSession):
    """Streams the user's audio; plays, transcribes and interrupts the server's replies."""

    engine: RealtimeServerVadEngine

    def __init__(self, engine: RealtimeServerVadEngine, options: SessionOptions, emit: Emit) -> None:
        super().__init__(engine, options, emit)
        self.settings = engine.settings
        self.tracker = DuplexTurnTracker.for_engine(engine, self._turn_ended)
        self._pending: list[np.ndarray] = []
        self._pending_samples = 0
        self._outbox: asyncio.Queue[dict[str, Any] | None] | None = None
        self._usages: deque[dict[str, Any]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self.connected = threading.Event()
        self.response_active = False
        self.item_id = ""  # the assistant item now playing
        self.item_started = 0.0  # when its first audio started playing
        self.item_ms = 0.0  # how much of its audio we have handed to playback
        self.playback_end = 0.0
        self.interruptions = 0
        assert engine._loop is not None
        self._task = engine._loop.submit(self._run())

    # -- caller's thread ----------------------------------------------------------------------------------
    def push_audio(self, pcm: np.ndarray) -> None:
        """Measure the turn locally and stream the audio to the server in ``append_ms`` pieces."""
        if self._closed:
            return
        self.tracker.user_audio(pcm)
        self._pending.append(np.asarray(pcm, np.float32))
        self._pending_samples += len(pcm)
        if self._pending_samples * 1000 >= self.settings.append_ms * SAMPLE_RATE:
            self._send(events.append_audio(np.concatenate(self._pending)))
            self._pending, self._pending_samples = [], 0

    def flush(self) -> None:
        """End of input: send what is buffered and close the turn being measured."""
        if self._pending:
            self._send(events.append_audio(np.concatenate(self._pending)))
            self._pending, self._pending_samples = [], 0
        self.tracker.finish()

    def close(self) -> None:
        """Close the websocket."""
        self._closed = True
        self._send(None)
        self._task.cancel()

    def _send(self, event: dict[str, Any] | None) -> None:
        outbox, loop = self._outbox, self.engine._loop
        if outbox is not None and loop is not None:
            loop.loop.call_soon_threadsafe(outbox.put_nowait, event)

    # -- the network thread -------------------------------------------------------------------------------
    async def _run(self) -> None:
        self._outbox = asyncio.Queue()
        wait = self.settings.health_backoff_s
        failures = 0
        while not self._closed:
            try:
                conn = await RealtimeConnection.open(self.engine.url, self.settings, self.engine.entry.label)
            except ServerFailure as exc:
                failures += 1
                self.emit(ErrorEvent(str(exc), fatal=failures > self.engine.reconnect_attempts))
                if failures > self.engine.reconnect_attempts:
                    return
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.settings.health_backoff_max_s)
                continue
            failures, wait = 0, self.settings.health_backoff_s
            try:
                await conn.send(self._session_update())
                self.connected.set()
                tasks = [asyncio.ensure_future(self._writer(conn)), asyncio.ensure_future(self._reader(conn))]
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                for task in done:
                    task.result()
            except ServerFailure as exc:
                if not self._closed:
                    self.emit(ErrorEvent(f"{exc}; reconnecting"))
            finally:
                self.connected.clear()
                await conn.close()

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
        transcript = ""
        while True:
            item = await conn.next_event(1.0)
            if item is None:
                continue
            kind, event = item
            if kind == "error":
                code = (event.get("error") or {}).get("code")
                if code not in IGNORED_ERRORS:
                    self.emit(ErrorEvent(error_message(label, event)))
            elif kind == "input_audio_buffer.speech_started":
                await self._barge_in(conn)
            elif kind == "response.created":
                self.response_active, transcript = True, ""
            elif kind == "response.output_audio.delta":
                self._play(str(event.get("item_id", "")), events.decode_audio_delta(event.get("delta", "")))
            elif kind in ("response.output_audio_transcript.delta", "response.output_text.delta"):
                piece = str(event.get("delta", ""))
                transcript += piece
                if piece:
                    self.emit(TextOut(piece, "agent", final=False))
            elif kind == "conversation.item.input_audio_transcription.completed":
                self.emit(TextOut(str(event.get("transcript", "")).strip(), "user"))
            elif kind == "response.done":
                self.response_active = False
                response = event.get("response") or {}
                if transcript.strip():
                    self.emit(TextOut(transcript.strip(), "agent"))
                    self.tracker.agent_text(transcript.strip())
                with self._lock:
                    self._usages.append({**turn_usage(response.get("usage"), self.settings.prices), "status": response.get("status", "")})

    def _play(self, item_id: str, pcm: np.ndarray) -> None:
        now = time.monotonic()
        if item_id != self.item_id:
            self.item_id, self.item_ms = item_id, 0.0
            self.item_started = max(now, self.playback_end)
        self.playback_end = max(now, self.playback_end) + len(pcm) / SAMPLE_RATE
        self.item_ms += len(pcm) * 1000 / SAMPLE_RATE
        self.tracker.agent_audio(pcm, SAMPLE_RATE)
        self.emit(AudioOut(pcm, SAMPLE_RATE))

    async def _barge_in(self, conn: RealtimeConnection) -> None:
        """The user talks: stop what is playing or being generated, and tell the server what was heard."""
        now = time.monotonic()
        playing = now < self.playback_end
        if not (playing or self.response_active):
            return
        self.interruptions += 1
        self.emit(Interrupt(self.tracker.turns))
        if self.response_active:
            await conn.send(events.response_cancel())
        if self.item_id and playing:
            heard_ms = min(self.item_ms, max(0.0, (now - self.item_started) * 1000))
            await conn.send(events.truncate(self.item_id, int(heard_ms)))
        self.playback_end = now

    def _turn_ended(self, event: Event) -> None:
        """A measured turn is over: attach the usage of the responses since the previous one."""
        if isinstance(event, TurnEnd):
            with self._lock:
                usages, self._usages = list(self._usages), deque()
            if usages:
                total = {key: round(sum(u[key] for u in usages), 6) for key in usages[0] if key != "status"}
                event.timeline.extra["usage"] = {**total, "responses": len(usages)}
        self.emit(event)
