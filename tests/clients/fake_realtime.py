"""A fake OpenAI Realtime server (websocket, aiohttp) on 127.0.0.1.

Event shapes match the ``openai`` package 3.57.0 (``pip download openai==3.57.0 --no-deps``), GA interface,
these files of ``openai/types/realtime/``:

* server events: ``session_created_event.py`` / ``session_updated_event.py`` (the session of
  ``realtime_session_create_request.py``), ``input_audio_buffer_committed_event.py``,
  ``input_audio_buffer_speech_started_event.py``, ``input_audio_buffer_speech_stopped_event.py``,
  ``conversation_item_added.py`` (``conversation_item.py``: ``realtime_conversation_item_user_message.py`` /
  ``realtime_conversation_item_assistant_message.py``), ``response_created_event.py``,
  ``response_output_item_added_event.py``, ``response_audio_transcript_delta_event.py``
  (``response.output_audio_transcript.delta``), ``response_audio_delta_event.py`` (``response.output_audio.delta``,
  base64 PCM16 24 kHz), ``response_audio_done_event.py``, ``response_done_event.py`` (``realtime_response.py``
  with ``realtime_response_status.py`` and ``realtime_response_usage.py``,
  ``realtime_response_usage_input_token_details.py``, ``realtime_response_usage_output_token_details.py``),
  ``conversation_item_input_audio_transcription_completed_event.py``, ``conversation_item_truncated_event.py``
  and ``realtime_error_event.py`` (``realtime_error.py``: type, code, message, param, event_id);
* client events it reads: ``session_update_event.py``, ``conversation_item_create_event.py``,
  ``input_audio_buffer_append_event.py``, ``input_audio_buffer_commit_event.py``, ``response_create_event.py``,
  ``response_cancel_event.py``, ``conversation_item_truncate_event.py``.

With ``OpenAI-Beta: realtime=v1`` the beta names (``response.audio.delta``, ``response.audio_transcript.delta``)
are sent instead. Server VAD (when the session's turn_detection asks for it) is a level detector: speech_started
at the first loud 20 ms, speech_stopped after ``silence_duration_ms`` of quiet, then an automatic response; speech
during a response cancels it (``interrupt_response``); ``response.cancel`` with no response active is the
upstream error ``response_cancel_not_active``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
from typing import Any

import numpy as np
from aiohttp import web

KEY = "sk-test-fake"
WORDS = ["The ", "capital ", "of ", "France ", "is ", "Paris."]
USAGE = {
    "total_tokens": 260,
    "input_tokens": 120,
    "output_tokens": 140,
    "input_token_details": {"text_tokens": 20, "audio_tokens": 100, "image_tokens": 0, "cached_tokens": 0, "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0}},
    "output_token_details": {"text_tokens": 30, "audio_tokens": 110},
}


def pcm16_b64(seconds: float, freq: float) -> str:
    t = np.arange(int(seconds * 24_000)) / 24_000
    return base64.b64encode((0.3 * np.sin(2 * np.pi * freq * t) * 32767).astype("<i2").tobytes()).decode()


class FakeRealtime:
    """``behaviour``: answer | error | refuse | die | garbage | hang | failed | garbled_audio | garbled_done
    (``garbled_*``: events of the right type whose fields are garbage) | slow_open (the upgrade answered
    ``open_delay_s`` late). ``reply_s``: audio per response."""

    def __init__(self, behaviour: str = "answer", reply_s: float = 1.2, pace: float = 4.0) -> None:
        self.behaviour, self.reply_s, self.pace = behaviour, reply_s, pace
        self.open_delay_s = 5.0  # slow_open: the websocket upgrade is answered this late
        self.connections = 0
        self.client_events: list[dict[str, Any]] = []
        self.sent_types: set[str] = set()  # the server event types it sent
        self.ids = itertools.count(1)
        self.app = web.Application()
        self.app.router.add_get("/v1/realtime", self.handle)

    def _id(self, prefix: str) -> str:
        return f"{prefix}_{next(self.ids):06d}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        auth = request.headers.get("Authorization", "")
        if self.behaviour == "refuse" or auth != f"Bearer {KEY}":
            body = {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error", "code": "invalid_api_key", "param": None}}
            return web.json_response(body, status=401)
        if self.behaviour == "slow_open":
            await asyncio.sleep(self.open_delay_s)
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        await _Conversation(self, ws, request, request.headers.get("OpenAI-Beta") == "realtime=v1").run()
        return ws


class _Conversation:
    def __init__(self, server: FakeRealtime, ws: web.WebSocketResponse, request: web.Request, beta: bool) -> None:
        self.server, self.ws, self.beta = server, ws, beta
        self.model, self.transport = request.query.get("model", ""), request.transport
        self.vad: dict[str, Any] | None = None
        self.buffer: list[np.ndarray] = []
        self.audio_ms = 0.0
        self.speaking_since: float | None = None
        self.quiet_ms = 0.0
        self.response: asyncio.Task | None = None
        self.user_item = ""

    def name(self, ga: str) -> str:
        if not self.beta:
            return ga
        return {"response.output_audio.delta": "response.audio.delta", "response.output_audio_transcript.delta": "response.audio_transcript.delta", "response.output_audio.done": "response.audio.done", "conversation.item.added": "conversation.item.created"}.get(ga, ga)

    async def send(self, kind: str, **fields: Any) -> None:
        self.server.sent_types.add(self.name(kind))
        await self.ws.send_str(json.dumps({"type": self.name(kind), "event_id": self.server._id("event"), **fields}))

    async def error(self, code: str, message: str, event_id: str | None = None, kind: str = "invalid_request_error") -> None:
        await self.send("error", error={"type": kind, "code": code, "message": message, "param": None, "event_id": event_id})

    async def run(self) -> None:
        await self.send("session.created", session={"type": "realtime", "object": "realtime.session", "id": self.server._id("sess"), "model": self.model})
        async for message in self.ws:
            if message.type != web.WSMsgType.TEXT:
                continue
            event = json.loads(message.data)
            self.server.client_events.append(event)
            await self.on_event(event)

    async def on_event(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "session.update":
            session = event.get("session", {})
            if not self.beta and session.get("type") != "realtime":
                await self.error("missing_required_parameter", "Missing required parameter: 'session.type'.", event.get("event_id"))
                return
            detection = session.get("turn_detection") if self.beta else session.get("audio", {}).get("input", {}).get("turn_detection")
            self.vad = detection
            await self.send("session.updated", session=session)
        elif kind == "conversation.item.create":
            await self.send("conversation.item.added", item={**event["item"], "id": self.server._id("item")})
        elif kind == "input_audio_buffer.append":
            pcm = np.frombuffer(base64.b64decode(event["audio"]), "<i2").astype(np.float32) / 32768
            self.buffer.append(pcm)
            if self.vad:
                await self.detect(pcm)
        elif kind == "input_audio_buffer.commit":
            await self.commit()
        elif kind == "response.create":
            self.start_response()
        elif kind == "response.cancel":
            if self.response is None or self.response.done():
                await self.error("response_cancel_not_active", "Cancellation failed: no active response found.", event.get("event_id"))
            else:
                self.response.cancel()
        elif kind == "conversation.item.truncate":
            await self.send("conversation.item.truncated", item_id=event["item_id"], content_index=event["content_index"], audio_end_ms=event["audio_end_ms"])

    async def commit(self) -> None:
        heard = np.concatenate(self.buffer) if self.buffer else np.zeros(0, np.float32)
        self.buffer = []
        if len(heard) < 2400:
            await self.error("input_audio_buffer_commit_empty", f"Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has {len(heard) / 24:.2f}ms of audio.")
            return
        self.user_item = self.server._id("item")
        await self.send("input_audio_buffer.committed", item_id=self.user_item, previous_item_id=None)
        await self.send("conversation.item.added", item={"id": self.user_item, "type": "message", "role": "user", "content": [{"type": "input_audio", "transcript": None}]})
        asyncio.get_running_loop().call_later(0.05, lambda: asyncio.ensure_future(self.transcribe(self.user_item, len(heard) / 24_000)))

    async def transcribe(self, item_id: str, seconds: float) -> None:
        if not self.ws.closed:
            await self.send("conversation.item.input_audio_transcription.completed", item_id=item_id, content_index=0, transcript=f"What is the capital of France? ({seconds:.1f} s)", usage={"type": "duration", "seconds": round(seconds, 1)})

    async def detect(self, pcm: np.ndarray) -> None:
        for start in range(0, len(pcm), 480):
            window = pcm[start : start + 480]
            loud = float(np.sqrt(np.mean(window**2))) > 0.02 if len(window) else False
            self.audio_ms += len(window) / 24
            if loud:
                self.quiet_ms = 0.0
                if self.speaking_since is None:
                    self.speaking_since = self.audio_ms
                    if self.response is not None and not self.response.done():
                        self.response.cancel()  # interrupt_response
                    await self.send("input_audio_buffer.speech_started", audio_start_ms=int(self.audio_ms), item_id=self.server._id("item"))
            elif self.speaking_since is not None:
                self.quiet_ms += len(window) / 24
                if self.quiet_ms >= self.vad.get("silence_duration_ms", 500):
                    self.speaking_since = None
                    await self.send("input_audio_buffer.speech_stopped", audio_end_ms=int(self.audio_ms), item_id="")
                    await self.commit()
                    self.start_response()

    def start_response(self) -> None:
        self.response = asyncio.ensure_future(self.respond())

    async def respond(self) -> None:
        try:
            await self._respond()
        except ConnectionError:  # the client went away mid-response
            pass

    async def _respond(self) -> None:
        behaviour = self.server.behaviour
        response_id, item_id = self.server._id("resp"), self.server._id("item")
        base = {"object": "realtime.response", "id": response_id, "conversation_id": "conv_1", "output_modalities": ["audio"]}
        await self.send("response.created", response={**base, "status": "in_progress", "output": []})
        if behaviour == "error":
            await self.error("insufficient_quota", "You exceeded your current quota, please check your plan and billing details.", kind="insufficient_quota")
            return
        if behaviour == "garbage":
            await self.ws.send_str("<html>502 Bad Gateway</html>")
            return
        if behaviour == "hang":
            await asyncio.sleep(3600)
        if behaviour == "garbled_audio":
            await self.send("response.output_audio.delta", response_id=response_id, item_id=item_id, output_index=0, content_index=0, delta=12345)
            return
        if behaviour == "garbled_done":
            await self.send("response.done", response={**base, "status": "failed", "status_details": "overloaded", "output": [], "usage": {"input_token_details": "many"}})
            return
        if behaviour == "failed":
            await self.send("response.done", response={**base, "status": "failed", "status_details": {"type": "failed", "error": {"type": "server_error", "code": "server_error", "message": "The server had an error while processing your request."}}, "output": [], "usage": USAGE})
            return
        await self.send("response.output_item.added", response_id=response_id, output_index=0, item={"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []})
        status = "completed"
        pieces = max(1, round(self.server.reply_s / 0.2))
        try:
            for index in range(pieces):
                if behaviour == "die" and index == 2:
                    self.transport.abort()  # the process died
                    return
                where = {"response_id": response_id, "item_id": item_id, "output_index": 0, "content_index": 0}
                words = WORDS[index:] if index == pieces - 1 else WORDS[index : index + 1]
                if words:
                    await self.send("response.output_audio_transcript.delta", **where, delta="".join(words))
                await self.send("response.output_audio.delta", **where, delta=pcm16_b64(0.2, 300 + 30 * index))
                await asyncio.sleep(0.2 / self.server.pace)
        except asyncio.CancelledError:
            status = "cancelled"
        await self.send("response.output_audio.done", response_id=response_id, item_id=item_id, output_index=0, content_index=0)
        details = {"type": "cancelled", "reason": "turn_detected"} if status == "cancelled" else None
        await self.send("response.done", response={**base, "status": status, "status_details": details, "output": [{"id": item_id, "type": "message", "role": "assistant", "status": status}], "usage": USAGE})
