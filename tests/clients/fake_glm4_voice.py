"""A fake GLM-4-Voice model server (aiohttp) on 127.0.0.1, and stand-ins for its client-side models.

Matched: THUDM/GLM-4-Voice@eb00ce9142e8d98b0ed7c57cd47e0d6d5dce9a1a ``model_server.py``
(``generate_stream``: ``(json.dumps({"token_id": token_id, "error_code": 0}) + "\\n").encode()`` per token;
``generate_stream_gate``: an exception becomes ``{"text": "Server Error", "error_code": 1}`` + newline;
Starlette StreamingResponse without a media type). The model interleaves 13 text tokens and 26 audio
tokens and ends with ``<|user|>``; here with the tiny vocabulary of :class:`WordTokenizer`.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from aiohttp import web

from tests.clients.serving import open_stream

WORDS = ["The", " capital", " of", " France", " is", " Paris", "."]
AUDIO_OFFSET = 1000
END_ID = 500  # <|user|>


class WordTokenizer:
    """Stands in for the GLM tokenizer: ids < len(WORDS) are words, >= AUDIO_OFFSET speech tokens."""

    audio_offset = AUDIO_OFFSET
    audio_tokens = 16_384
    end_id = END_ID

    def decode(self, ids: list[int]) -> str:
        return "".join(WORDS[i] if i < len(WORDS) else f"<|audio_{i - AUDIO_OFFSET}|>" if i >= AUDIO_OFFSET else "<|user|>" for i in ids)


class CountingSpeechTokenizer:
    """Stands in for glm-4-voice-tokenizer: 12.5 tokens per second of 16 kHz audio."""

    def __init__(self) -> None:
        self.seen: list[int] = []

    def tokens(self, audio: np.ndarray) -> list[int]:
        self.seen.append(len(audio))
        return [int(i) % 16384 for i in range(int(len(audio) / 16_000 * 12.5))]


class ToneDecoder:
    """Stands in for flow + HiFT: 80 ms of 22.05 kHz tone per speech token; logs the blocks."""

    def __init__(self) -> None:
        self.blocks: list[tuple[int, bool]] = []

    def start(self) -> Any:
        return {}

    def feed(self, tokens: list[int], state: Any, finalize: bool) -> tuple[np.ndarray, Any]:
        self.blocks.append((len(tokens), finalize))
        t = np.arange(int(len(tokens) * 0.08 * 22_050)) / 22_050
        return (0.3 * np.sin(2 * np.pi * 240 * t)).astype(np.float32), state


def reply_tokens(speech_tokens: int = 130) -> list[int]:
    """13 text then 26 speech tokens, interleaved, then <|user|>."""
    out: list[int] = []
    words = list(range(len(WORDS)))
    speech = [AUDIO_OFFSET + i for i in range(speech_tokens)]
    while words or speech:
        out += words[:13]
        words = words[13:]
        out += speech[:26]
        speech = speech[26:]
    return out + [END_ID]


class FakeGlm4Voice:
    """``behaviour``: answer | error (after 10 tokens) | refuse (error before any token) | die | garbage |
    off_codebook (the 11th token an id far past the speech tokens) |
    silent (the request is read, then not a byte for ``stall_s``) | stall (10 tokens, then nothing for
    ``stall_s``, the connection kept open)."""

    def __init__(self, behaviour: str = "answer", stall_s: float = 30.0) -> None:
        self.behaviour, self.stall_s = behaviour, stall_s
        self.requests: list[dict] = []
        self.app = web.Application()
        self.app.router.add_post("/generate_stream", self.generate)

    async def generate(self, request: web.Request) -> web.StreamResponse:
        if self.behaviour == "silent":
            self.requests.append(await request.json())
            await asyncio.sleep(self.stall_s)
            return web.Response(status=503)
        _params, response = await open_stream(request, self.requests)
        for index, token in enumerate(reply_tokens()):
            if (self.behaviour == "error" and index == 10) or (self.behaviour == "refuse" and index == 0):
                await response.write((json.dumps({"text": "Server Error", "error_code": 1}) + "\n").encode())
                break
            if self.behaviour == "stall" and index == 10:
                await asyncio.sleep(self.stall_s)
            if self.behaviour == "die" and index == 10:
                request.transport.abort()  # type: ignore[union-attr]
                return response
            if self.behaviour == "garbage" and index == 10:
                await response.write(b"Traceback (most recent call last):\n")
                break
            if self.behaviour == "off_codebook" and index == 10:
                token = AUDIO_OFFSET + 10**6
            await response.write((json.dumps({"token_id": token, "error_code": 0}) + "\n").encode())
            if index % 20 == 0:
                await asyncio.sleep(0.005)
        await response.write_eof()
        return response
