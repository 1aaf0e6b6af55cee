"""A fake vLLM-Omni / vLLM server on 127.0.0.1 speaking the pinned wire formats (see ``wire.py``).

Run it: ``python -m tests.qwen.fake_vllm_omni --port 8091 [--profile qwen3-omni]`` then
``VLLM_OMNI_URL=http://127.0.0.1:8091 python -m speechlm_demo bench --engine qwen2.5-omni-vllm``.

Profiles: ``qwen2.5-omni`` (``async_chunk: false``: all audio in one chunk after the text), ``qwen3-omni``
(an audio chunk per sentence while the text goes on; also ``/v1/realtime``), ``vllm`` (plain vLLM: text
only, e.g. Ultravox). ``scenario`` makes it fail the way real servers do (``garbled_fields``: well-formed
events whose fields are garbage, which 0.30.0 never sends: ``sample_rate_hz`` a string, ``audio_metadata``
not an object, the model list's ``data`` a number; ``slow``: the stream's first event is ``slow_s`` late,
``stalled``: the chat reply's headers are, and those of ``/v1/audio/speech``; on ``/v1/realtime`` ``slow``
delays the reply's first event and ``stalled`` pauses it after its first sentence). ``close_after_reply`` closes
each realtime connection after its reply (an idle timeout, a proxy); ``drop_kept`` closes one when a second
turn starts on it (a restart the client has not seen yet). Its delays are fixed, so the first-text / first-audio figures it
yields are protocol behaviour, not model speed.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import logging
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Self

import numpy as np
import soundfile as sf
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.qwen import wire

log = logging.getLogger(__name__)

PROFILES = {
    "qwen2.5-omni": {"model": "Qwen/Qwen2.5-Omni-7B", "omni": True, "streams_audio": False, "speakers": ("chelsie", "ethan")},
    "qwen3-omni": {"model": "Qwen/Qwen3-Omni-30B-A3B-Instruct", "omni": True, "streams_audio": True, "speakers": ("ethan", "chelsie", "aiden")},
    "vllm": {"model": "fixie-ai/ultravox-v0_5-llama-3_2-1b", "omni": False, "streams_audio": False, "speakers": ()},
}
SCENARIOS = ("ok", "error_after_200", "http_500", "midway", "malformed", "no_audio", "bad_audio", "garbled_fields", "slow", "stalled")
OUT_RATE = 24_000


@dataclass
class FakeState:
    """What the fake does, and what it received (tests read ``requests``)."""

    profile: str = "qwen2.5-omni"
    scenario: str = "ok"
    token_delay_s: float = 0.02
    audio_delay_s: float = 0.15
    slow_s: float = 5.0
    served_model: str | None = None  # serve under another name than the profile's model
    close_after_reply: bool = False  # realtime: close the websocket after each reply's output_audio.done
    drop_kept: bool = False  # realtime: close the websocket when a second turn's commit arrives on it
    connections: int = 0  # realtime websockets accepted
    models_stall_s: float = 0.0  # GET /v1/models answers this late
    model_lists: int = 0  # GET /v1/models asked
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model(self) -> str:
        return self.served_model or PROFILES[self.profile]["model"]


def reply_sentences(seconds: float) -> list[str]:
    """A reply that depends only on how much audio came in."""
    return [f"I heard {seconds:.1f} seconds of your voice.", "This is a fake server answering."]


def tone(text: str) -> np.ndarray:
    """Non-silent audio, 60 ms per word, at 24 kHz."""
    n = int(OUT_RATE * 0.06 * max(1, len(text.split())))
    t = np.arange(n) / OUT_RATE
    return (0.3 * np.sin(2 * np.pi * 220.0 * t)).astype(np.float32)


def wav_b64(pcm: np.ndarray) -> str:
    """``soundfile.write(..., format="WAV")`` of float32 = 16-bit PCM WAV, base64 (vllm-omni create_audio)."""
    buffer = io.BytesIO()
    sf.write(buffer, pcm, OUT_RATE, format="WAV")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def heard_seconds(messages: list[dict[str, Any]]) -> float:
    """Decode the last user message's audio part; ValueError when there is none or it is not audio."""
    content = messages[-1].get("content") if messages else None
    for part in content if isinstance(content, list) else []:
        if part.get("type") == "audio_url":
            url = part["audio_url"]["url"]
            data = base64.b64decode(url.split(",", 1)[1])
        elif part.get("type") == "input_audio":
            data = base64.b64decode(part["input_audio"]["data"])
        else:
            continue
        audio, rate = sf.read(io.BytesIO(data), dtype="float32")
        return len(audio) / rate
    raise ValueError("No audio found in the last user message")


def build_app(state: FakeState) -> Starlette:
    """The Starlette app (vLLM serves FastAPI on uvicorn; same response classes)."""

    async def models(request: Request) -> Response:
        state.model_lists += 1
        await asyncio.sleep(state.models_stall_s)
        if state.scenario == "garbled_fields":
            return Response(wire.compact({"object": "list", "data": 7}), media_type="application/json")
        return Response(wire.models_list(state.model, int(time.time())), media_type="application/json")

    async def chat(request: Request) -> Response:
        body = await request.json()
        state.requests.append(body)
        if state.scenario == "stalled":  # hung before answering: not even the response headers for slow_s
            await asyncio.sleep(state.slow_s)
        profile = PROFILES[state.profile]
        if body.get("model") != state.model:
            return _error(f"The model `{body.get('model')}` does not exist.", "NotFoundError", 404, "model")
        speaker = body.get("voice") or body.get("speaker")
        if speaker and profile["speakers"] and speaker.lower().strip() not in profile["speakers"]:
            return _error(f"Invalid speaker '{speaker}'. Supported: {', '.join(sorted(profile['speakers']))}", "BadRequestError", 400)
        last = (body.get("messages") or [{}])[-1]
        try:
            if not profile["omni"] and isinstance(last.get("content"), str):  # a plain text chat (an LLM server)
                sentences = [f"You said: {last['content']}", "This is a fake server answering."]
            else:
                sentences = reply_sentences(heard_seconds(body.get("messages") or []))
        except Exception as exc:  # noqa: BLE001 - the real server answers 400 for unreadable media
            return _error(str(exc), "BadRequestError", 400)
        if state.scenario == "http_500":
            return _error("EngineCore encountered an issue. See stack trace (above) for the root cause.", "InternalServerError", 500)
        wants_audio = profile["omni"] and "audio" in (body.get("modalities") or ["text", "audio"])
        if not body.get("stream"):
            return await _whole(body, sentences, wants_audio)
        return StreamingResponse(_stream(body, sentences, wants_audio, profile), media_type="text/event-stream")

    async def _whole(body: dict[str, Any], sentences: list[str], wants_audio: bool) -> Response:
        text = " ".join(sentences)
        await asyncio.sleep(state.token_delay_s * len(text.split()) + (state.audio_delay_s if wants_audio else 0))
        pcm = tone(text) if wants_audio and state.scenario != "no_audio" else None
        if wants_audio and pcm is None:
            return _error("Audio generation completed but no audio was produced.", "BadRequestError", 400)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        content = wire.full_response(
            rid, int(time.time()), state.model, text, wav_b64(pcm) if pcm is not None else None,
            frames=len(pcm) if pcm is not None else 0, rate=OUT_RATE, prompt_tokens=100, completion_tokens=len(text.split()),
        )
        return Response(content, media_type="application/json")

    async def _stream(body: dict[str, Any], sentences: list[str], wants_audio: bool, profile: dict[str, Any]) -> AsyncIterator[str]:
        rid, created, model, omni = f"chatcmpl-{uuid.uuid4().hex}", int(time.time()), state.model, profile["omni"]
        if state.scenario == "slow":
            await asyncio.sleep(state.slow_s)
        yield wire.role_chunk(rid, created, model, omni=omni)
        if state.scenario == "malformed":
            yield 'data: {"id": "chatcmpl-x", "choices": [\n\n'
            return
        words = [w + " " for s in sentences for w in s.split()]
        words[-1] = words[-1].rstrip()
        sentence_words, said = 0, []
        for i, word in enumerate(words):
            await asyncio.sleep(state.token_delay_s)
            last = i == len(words) - 1
            yield wire.text_chunk(rid, created, model, word, omni=omni, last=last, finish=None if omni and wants_audio else ("stop" if last else None))
            said.append(word)
            count = i + 1
            if state.scenario == "midway" and count == 4:
                return  # the connection ends without [DONE]
            if state.scenario == "error_after_200" and count == 3:
                yield wire.streaming_error("Engine loop is not running. Inspect the stacktrace to find the original error.")
                yield wire.DONE
                return
            sentence_words += 1
            if wants_audio and profile["streams_audio"] and (word.rstrip().endswith(".") or last) and state.scenario != "no_audio":
                await asyncio.sleep(state.audio_delay_s)
                yield _audio(rid, created, model, "".join(said[-sentence_words:]), finish="stop" if last else None)
                sentence_words = 0
        if wants_audio and not profile["streams_audio"] and state.scenario != "no_audio":
            await asyncio.sleep(state.audio_delay_s * len(sentences))
            yield _audio(rid, created, model, "".join(said), finish="stop")
        if wants_audio and state.scenario == "no_audio":
            # the fallback stop chunk when a requested modality never came (serving_chat.py, after the loop)
            yield wire.sse({**wire.head(rid, created, model), "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
        yield wire.DONE

    def _audio(rid: str, created: int, model: str, text: str, finish: str | None) -> str:
        if state.scenario == "bad_audio":
            b64, frames = base64.b64encode(b"not a wav file at all").decode("ascii"), 10
        else:
            pcm = tone(text)
            b64, frames = wav_b64(pcm), len(pcm)
        if state.scenario == "garbled_fields":
            chunk = json.loads(wire.audio_chunk(rid, created, model, b64, frames=frames, rate=OUT_RATE, fmt="wav", finish=finish, prompt_tokens=100)[6:])
            chunk["choices"][0]["audio_metadata"] = "wav@24k"
            return wire.sse(chunk)
        return wire.audio_chunk(rid, created, model, b64, frames=frames, rate=OUT_RATE, fmt="wav", finish=finish, prompt_tokens=100)

    async def speech(request: Request) -> Response:
        """``POST /v1/audio/speech`` as vllm-omni 0.30.0 serves it: ``OpenAICreateSpeechRequest``
        (``entrypoints/openai/protocol/audio.py``: ``input``, ``model``, ``voice``, ``response_format``), the
        audio bytes in the body, "Input text cannot be empty" (``entrypoints/openai/serving_speech.py``)."""
        body = await request.json()
        state.requests.append(body)
        if not body.get("input"):
            return _error("Input text cannot be empty", "BadRequestError", 400)
        if state.scenario == "stalled":
            await asyncio.sleep(state.slow_s)
        if state.scenario == "bad_audio":
            return Response(b"not a wav file at all", media_type="audio/wav")
        buffer = io.BytesIO()
        sf.write(buffer, tone(body["input"]), OUT_RATE, format="WAV")
        return Response(buffer.getvalue(), media_type="audio/wav")

    async def realtime(websocket: WebSocket) -> None:
        await _Realtime(websocket, state).run()

    routes = [
        Route("/v1/models", models, methods=["GET"]),
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/audio/speech", speech, methods=["POST"]),
        WebSocketRoute("/v1/realtime", realtime),
    ]
    return Starlette(routes=routes)


def _error(message: str, err_type: str, code: int, param: str | None = None) -> Response:
    return Response(wire.error_body(message, err_type, code, param), status_code=code, media_type="application/json")


class _Realtime:
    """vllm 0.30.0 RealtimeConnection.handle_event + vllm-omni 0.30.0 RealtimeConnection._run_generation."""

    def __init__(self, websocket: WebSocket, state: FakeState) -> None:
        self.ws, self.state = websocket, state
        self.validated = False
        self.audio: asyncio.Queue[np.ndarray | None] = asyncio.Queue()
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        await self.ws.accept()
        self.state.connections += 1
        if not PROFILES[self.state.profile]["streams_audio"]:  # 0.30.0: only Qwen3-Omni implements realtime
            # api_server.py: websocket.send_json (Starlette: compact JSON)
            await self.ws.send_text(wire.compact({"type": "error", "error": "Realtime API is not available", "code": "unsupported"}))
            await self.ws.close()
            return
        await self.ws.send_text(wire.rt_session_created(f"sess-{uuid.uuid4().hex}", int(time.time())))
        try:
            while True:
                message = await self.ws.receive_text()
                try:
                    await self.handle(json.loads(message))
                except json.JSONDecodeError:
                    await self.ws.send_text(wire.rt_error("Invalid JSON", "invalid_json"))
        except WebSocketDisconnect:
            pass
        finally:
            if self.task and not self.task.done():
                self.task.cancel()

    async def handle(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        self.state.requests.append(event)
        if kind == "session.update":
            if event.get("model") is None:
                await self.ws.send_text(wire.rt_error("Missing required field: model", "invalid_event"))
            elif event["model"] != self.state.model:
                await self.ws.send_text(wire.rt_error(f"The model `{event['model']}` does not exist.", "model_not_found"))
            else:
                self.validated = True
        elif kind == "input_audio_buffer.append":
            try:
                raw = base64.b64decode(event["audio"], validate=True)
                if not raw:
                    raise ValueError("Can't process empty audio.")
                self.audio.put_nowait(np.frombuffer(raw, dtype=np.int16).astype(np.float32) / 32768.0)
            except Exception:  # noqa: BLE001 - as upstream: any decode failure is invalid_audio
                await self.ws.send_text(wire.rt_error("Invalid audio data", "invalid_audio"))
        elif kind == "input_audio_buffer.commit":
            if not self.validated:
                message = "Model not validated. Make sure to validate the model by sending a session.update event."
                await self.ws.send_text(wire.rt_error(message, "model_not_validated"))
            elif event.get("final"):
                self.audio.put_nowait(None)
            elif self.task is not None and self.state.drop_kept:
                await self.ws.close()
            elif self.task is None or self.task.done():
                self.task = asyncio.create_task(self.generate())
        else:
            await self.ws.send_text(wire.rt_error(f"Unknown event type: {kind}", "unknown_event"))

    async def generate(self) -> None:
        samples = 0
        while (chunk := await self.audio.get()) is not None:
            samples += len(chunk)
        sent_audio, full = False, ""
        try:
            if self.state.scenario == "error_after_200":
                raise RuntimeError("EngineCore encountered an issue.")
            if self.state.scenario == "slow":
                await asyncio.sleep(self.state.slow_s)
            for n, sentence in enumerate(reply_sentences(samples / 16_000)):
                if n and self.state.scenario == "stalled":
                    await asyncio.sleep(self.state.slow_s)
                for word in sentence.split():
                    await asyncio.sleep(self.state.token_delay_s)
                    piece = (" " if full else "") + word
                    full += piece
                    await self.ws.send_text(wire.rt_delta(piece))
                if self.state.scenario != "no_audio":
                    await asyncio.sleep(self.state.audio_delay_s)
                    pcm16 = (np.clip(tone(sentence), -1, 1) * 32767.0).astype(np.int16)
                    rate: Any = "24k" if self.state.scenario == "garbled_fields" else OUT_RATE
                    await self.ws.send_text(wire.rt_audio(base64.b64encode(pcm16.tobytes()).decode("utf-8"), rate))
                    sent_audio = True
            await self.ws.send_text(wire.rt_done(full, 100, len(full.split())))
            if sent_audio:
                await self.ws.send_text(wire.rt_audio_done(True))
                await self.after_reply()
                return
        except Exception as exc:  # noqa: BLE001
            await self.ws.send_text(wire.rt_error(str(exc), "processing_error"))
        await self.ws.send_text(wire.rt_audio_done(sent_audio))
        await self.after_reply()

    async def after_reply(self) -> None:
        if self.state.close_after_reply:
            await self.ws.close()


class FakeServer:
    """Runs the app with uvicorn in a thread on 127.0.0.1 (port 0 = any free port)."""

    def __init__(self, state: FakeState | None = None, port: int = 0) -> None:
        self.state = state or FakeState()
        config = uvicorn.Config(build_app(self.state), host="127.0.0.1", port=port, log_level="warning", ws="auto")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-vllm-omni", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake vLLM-Omni server did not start")
            time.sleep(0.02)
        return self

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        port = self._server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8091)
    parser.add_argument("--profile", choices=sorted(PROFILES), default="qwen2.5-omni")
    parser.add_argument("--scenario", choices=SCENARIOS, default="ok")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    app = build_app(FakeState(profile=args.profile, scenario=args.scenario))
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", ws="auto")


if __name__ == "__main__":
    main()
