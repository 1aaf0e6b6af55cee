"""Mini-Omni / Mini-Omni2 as clients of their own servers (``python server.py`` in either repository).

One request per turn: ``POST /chat`` with ``{"audio": base64 WAV, "stream_stride", "max_tokens"}``. The
servers run Flask with ``threaded=False``: they take one request at a time and a second one waits
unanswered, so a reply that does not start within ``read_timeout_s`` is reported as a busy server. They
keep no conversation history: each turn is answered on its own.
"""

from __future__ import annotations

import base64
import threading
from collections.abc import Iterator
from contextlib import closing
from typing import Literal

import httpx
import numpy as np
from pydantic import Field

from ..base import AudioOut, Event, Mark, Progress, SessionOptions, TextOut, UserTurn
from ..fallback import ServerEngine
from ..server_client import (
    ProtocolError,
    ServerFailure,
    ServerSettings,
    check_reachable,
    reply_chunks,
    reply_format,
    turn_wav,
)
from .protocol import SAMPLE_RATE, MultipartReader, PcmAssembler

BUSY_HINT = "Mini-Omni's server answers one request at a time (Flask threaded=False); is another client using it?"


class MiniOmniSettings(ServerSettings):
    """Catalogue ``defaults`` of a Mini-Omni entry."""

    variant: Literal["mini-omni", "mini-omni2"] = "mini-omni"
    url_env: str = "MINI_OMNI_URL"
    stream_stride: int = Field(4, ge=1, le=64)
    max_tokens: int = Field(2048, ge=16, le=8192)


class MiniOmniEngine(ServerEngine):
    """Sends the turn as a WAV file; plays the 24 kHz PCM it streams back (and Mini-Omni2's text)."""

    Settings = MiniOmniSettings
    settings: MiniOmniSettings

    def connect(self, progress: Progress) -> None:
        """Resolve the URL and check the server answers HTTP."""
        self.base_url = self.settings.server_url(self.entry.label)
        progress(0.2, f"checking {self.base_url}")
        check_reachable(self.base_url, self.settings.connect_timeout_s, self.entry.label)

    def respond_remote(self, turn: UserTurn, history: list[dict], options: SessionOptions) -> Iterator[Event]:
        """Stream the server's reply to ``turn``."""
        payload = {
            "audio": base64.b64encode(turn_wav(turn.audio, turn.sample_rate)).decode("ascii"),
            "stream_stride": self.settings.stream_stride,
            "max_tokens": self.settings.max_tokens,
        }
        label = self.entry.label
        audio_s, text = 0.0, ""
        expected = "multipart/x-mixed-replace" if self.settings.variant == "mini-omni2" else "audio/wav"

        def check(response: httpx.Response) -> None:
            kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != expected:
                raise ServerFailure(f"{label} answered with {kind or 'no content type'!r}, not {expected!r}: is this a {self.settings.variant} server?")

        chunks = reply_chunks(self.base_url + "/chat", payload, self.settings, label, turn.cancel, busy_hint=BUSY_HINT, check=check)
        with closing(chunks), reply_format(label):
            events = _multipart_events if self.settings.variant == "mini-omni2" else _pcm_events
            for event in events(chunks, turn.cancel):
                if isinstance(event, AudioOut):
                    audio_s += event.duration_s
                elif event.text:
                    if not text:
                        yield Mark("llm_first_token")
                    text += event.text
                    event = TextOut(event.text, "agent", final=False)
                yield event
        if turn.cancel.is_set():
            return
        if audio_s == 0.0:
            raise ServerFailure(f"{label} finished without any reply audio")
        if text.strip():
            yield TextOut(text.strip(), "agent")


def _pcm_events(chunks: Iterator[bytes], cancel: threading.Event) -> Iterator[AudioOut | TextOut]:
    """The reply's audio; a stream cut by a cancel is not checked for a whole last sample."""
    pcm = PcmAssembler()
    for chunk in chunks:
        samples = pcm.feed(chunk)
        if len(samples):
            yield AudioOut(samples, SAMPLE_RATE)
    if pcm.dangling and not cancel.is_set():
        raise ProtocolError("the audio stream ended in the middle of a 16-bit sample")


def _multipart_events(chunks: Iterator[bytes], cancel: threading.Event) -> Iterator[AudioOut | TextOut]:
    """The reply's parts; a stream cut by a cancel is not checked for a whole last part."""
    reader = MultipartReader()
    for chunk in chunks:
        yield from _parts(reader.feed(chunk))
    if not cancel.is_set():
        yield from _parts(reader.finish())


def _parts(parts: list[tuple[str, bytes]]) -> Iterator[AudioOut | TextOut]:
    for kind, body in parts:
        if kind == "text/plain":
            yield TextOut(body.decode("utf-8", "replace"), "agent", final=False)
        elif len(body) % 2:
            raise ProtocolError(f"an audio part of {len(body)} bytes is not 16-bit PCM")
        elif body:
            yield AudioOut(np.frombuffer(body, dtype="<i2").astype(np.float32) / 32768.0, SAMPLE_RATE)
