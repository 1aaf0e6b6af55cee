"""A fake LLaMA-Omni2 controller + model worker (aiohttp) on 127.0.0.1.

Matched: ictnlp/LLaMA-Omni2@c8afa9061a9c2d2c1919f7293f5492d946869752, ``llama_omni2/serve/model_worker.py``
(``generate_stream``: one ``json.dumps({"text", "unit", "finalize", "error_code": 0}).encode() + b"\\0"`` per
streamed token with cumulative text and units; ``generate_stream_gate``: any exception becomes
``{"text": server_error_msg, "error_code": 1}``; the history must have an odd number of messages and every
third entry's ``content.path`` is read with ``whisper.load_audio``) and ``controller.py`` (``/list_models``;
``worker_api_generate_stream`` with no worker sends error_code 2 and then 3; Starlette's StreamingResponse
without a media type: chunked, no Content-Type).
"""

from __future__ import annotations

import asyncio
import json

import soundfile as sf
from aiohttp import web

from tests.clients.serving import open_stream

SERVER_ERROR_MSG = "**NETWORK ERROR DUE TO HIGH TRAFFIC. PLEASE REGENERATE OR REFRESH THIS PAGE.**"
REPLY = ["The", " capital", " of", " France", " is", " Paris", "."]


def frame(data: dict) -> bytes:
    return json.dumps(data).encode() + b"\0"


class FakeLlamaOmni2:
    """``behaviour``: answer | worker_error | no_worker | die | garbage | garbled_models (the model list a
    string) | garbled_frame (a frame's ``error_code`` a string) | off_codebook, negative_unit (the third frame's
    last unit id 10**6 or -7): the right shapes with garbage in them |
    silent (the request is read, then not a byte for ``stall_s``: the worker waits on its
    ``limit_model_concurrency`` semaphore before its StreamingResponse starts) | stall (three frames, then
    nothing for ``stall_s``, the connection kept open)."""

    def __init__(self, behaviour: str = "answer", model: str = "LLaMA-Omni2-7B-Bilingual", stall_s: float = 30.0) -> None:
        self.behaviour, self.model, self.stall_s = behaviour, model, stall_s
        self.requests: list[dict] = []
        self.app = web.Application()
        self.app.router.add_post("/list_models", self.list_models)  # the controller
        self.app.router.add_post("/worker_get_status", self.status)  # a worker (the controller proxies it too)
        self.app.router.add_post("/worker_generate_stream", self.generate)

    async def list_models(self, request: web.Request) -> web.Response:
        return web.json_response({"models": self.model if self.behaviour == "garbled_models" else [self.model]})

    async def status(self, request: web.Request) -> web.Response:
        return web.json_response({"model_names": [self.model], "speed": 1, "queue_length": 0})

    def _check_history(self, history: list[dict]) -> None:
        """``get_input_params`` + ``process_messages`` of the worker."""
        messages = 0
        for i, turn in enumerate(history):
            if i % 3 == 0:
                sf.read(turn["content"]["path"])  # whisper.load_audio; raises on a missing/bad file
                messages += 1
            elif i % 3 == 1:
                messages += 1
        assert messages % 2 == 1, "Number of history messages must be odd"

    async def generate(self, request: web.Request) -> web.StreamResponse:
        if self.behaviour == "silent":
            self.requests.append(await request.json())
            await asyncio.sleep(self.stall_s)
            return web.Response(status=503)
        params, response = await open_stream(request, self.requests)
        if self.behaviour == "no_worker":
            await response.write(frame({"text": SERVER_ERROR_MSG, "error_code": 2}))
            await response.write(frame({"text": SERVER_ERROR_MSG, "error_code": 3}))
            await response.write_eof()
            return response
        try:
            self._check_history(params["history"])
        except Exception:  # noqa: BLE001 - as generate_stream_gate
            await response.write(frame({"text": SERVER_ERROR_MSG, "error_code": 1}))
            await response.write_eof()
            return response
        text, units = "", []
        for index, token in enumerate(REPLY + ["<|im_end|>"]):
            if self.behaviour == "stall" and index == 3:
                await asyncio.sleep(self.stall_s)
            if self.behaviour == "die" and index == 3:
                request.transport.abort()  # type: ignore[union-attr]
                return response
            if self.behaviour == "garbled_frame" and index == 2:
                await response.write(frame({"text": "The capital", "unit": "", "finalize": False, "error_code": "none"}))
                break
            if self.behaviour == "garbage" and index == 2:
                await response.write(b"<html>Bad Gateway</html>\0")
                break
            if self.behaviour == "worker_error" and index == 4:
                await response.write(frame({"text": SERVER_ERROR_MSG, "error_code": 1}))
                break
            text += token
            units += [(index * 25 + k) % 6561 for k in range(25)]
            if self.behaviour in ("off_codebook", "negative_unit") and index == 2:
                units[-1] = 10**6 if self.behaviour == "off_codebook" else -7
            finalize = text.endswith("<|im_end|>")
            shown = text[: -len("<|im_end|>")] if finalize else text
            await response.write(frame({"text": shown, "unit": " ".join(map(str, units)), "finalize": finalize, "error_code": 0}))
            await asyncio.sleep(0.01)
        await response.write_eof()
        return response
