"""What every client of a research model server shares: settings (the URL is read by
:mod:`speechlm_demo.engines.server_address`), streamed HTTP POSTs whose failures read clearly, delimited
reply framing, cumulative reply text as events, and the turn as a WAV file.

A failure that means "this server could not answer the turn" is a :class:`ServerFailure`; the engine's
fallback (see :mod:`speechlm_demo.engines.fallback`) may answer the turn instead.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any, ClassVar, Generic, TypeVar

import httpx
from pydantic import Field

from ..audio import encode_wav, resample
from ..turntaking.half_duplex import HalfDuplexSettings
from .base import EngineError, EngineSettings, Event, Mark, TextOut
from .read_aside import read_aside
from .server_address import ServerConnection

T = TypeVar("T")


class HealthBackoff(EngineSettings):
    """How long to leave a server that failed before trying it again (doubling up to the maximum)."""

    health_backoff_s: float = Field(2.0, gt=0, description="first wait before re-trying a server that failed")
    health_backoff_max_s: float = Field(60.0, gt=0)


class ServerSettings(HalfDuplexSettings, ServerConnection, HealthBackoff):
    """Settings of a half-duplex server client: turn knobs, the connection, and its fallback."""

    fallback: str | None = Field("cascade", description="engine answering turns the server cannot; null: none")


class ServerFailure(EngineError):
    """The server could not answer this turn (unreachable, refused, busy, broke off, spoke garbage)."""


class ProtocolError(ValueError):
    """Bytes that are not the server's reply format."""


def turn_wav(audio: Any, sample_rate: int, rate: int = 16_000) -> bytes:
    """The turn as a 16-bit mono WAV file at ``rate`` (what the servers' ``whisper.load_audio`` reads)."""
    return encode_wav(resample(audio, sample_rate, rate) if sample_rate != rate else audio, rate)


def check_reachable(base_url: str, timeout_s: float, label: str) -> None:
    """Raise :class:`ServerFailure` unless something answers HTTP at ``base_url`` (any status will do)."""
    try:
        with httpx.Client(timeout=timeout_s) as client:
            client.get(base_url + "/")
    except httpx.ReadTimeout as exc:
        raise ServerFailure(f"{label} server at {base_url} accepts connections but does not answer (busy or hung)") from exc
    except httpx.HTTPError as exc:
        raise ServerFailure(f"{label} server at {base_url} is unreachable: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@contextmanager
def reply_format(label: str) -> Iterator[None]:
    """A :class:`ProtocolError` inside (bytes that are not the reply format) becomes a :class:`ServerFailure`."""
    try:
        yield
    except ProtocolError as exc:
        raise ServerFailure(f"{label} sent something that is not its reply format: {exc}") from exc


@contextmanager
def post_stream(
    url: str, payload: dict[str, Any], settings: ServerConnection, label: str, *, busy_hint: str = ""
) -> Iterator[httpx.Response]:
    """POST ``payload`` as JSON and yield the streamed response (status 2xx checked).

    Every transport failure becomes a :class:`ServerFailure` naming ``label`` and what happened; reading
    the body inside the ``with`` block goes through :func:`read_chunks` for the same treatment, and a
    :class:`ProtocolError` raised there (bytes that are not the reply format) becomes one too.
    """
    timeout = httpx.Timeout(settings.read_timeout_s, connect=settings.connect_timeout_s)
    try:
        with reply_format(label), httpx.Client(timeout=timeout) as client, client.stream("POST", url, json=payload) as response:
            if response.status_code >= 400:
                body = response.read()[:300].decode("utf-8", "replace").strip()
                raise ServerFailure(f"{label} refused the turn: HTTP {response.status_code} {body!r}")
            yield response
    except httpx.ConnectError as exc:
        raise ServerFailure(f"{label} server at {url} is unreachable: {_reason(exc)}") from exc
    except httpx.ConnectTimeout as exc:
        raise ServerFailure(f"{label} server at {url} did not accept the connection in time") from exc
    except httpx.ReadTimeout as exc:
        hint = f" {busy_hint}" if busy_hint else ""
        raise ServerFailure(
            f"{label} sent no reply within {settings.read_timeout_s:g} s: the server is busy or hung.{hint}"
        ) from exc
    except httpx.HTTPError as exc:
        raise ServerFailure(f"{label} connection failed: {_reason(exc)}") from exc


def reply_chunks(
    url: str,
    payload: dict[str, Any],
    settings: ServerConnection,
    label: str,
    cancel: threading.Event,
    *,
    busy_hint: str = "",
    check: Callable[[httpx.Response], None] | None = None,
) -> Generator[bytes, None, None]:
    """The reply's body chunks as :func:`post_stream` and :func:`read_chunks` give them (``check`` first looks
    at the response, e.g. its content type), read aside (:func:`~.read_aside.read_aside`): a barge-in ends the
    reply at once even while the server says nothing. Parse them inside :func:`reply_format`, and close the
    generator when done (``contextlib.closing``): that stops the reader and closes its connection."""

    def produce(stop: threading.Event) -> Iterator[bytes]:
        with post_stream(url, payload, settings, label, busy_hint=busy_hint) as response:
            if check is not None:
                check(response)
            yield from read_chunks(response, label, stop)

    return read_aside(f"POST {url}", produce, cancel)


def read_chunks(response: httpx.Response, label: str, cancel: Any = None) -> Iterator[bytes]:
    """The body's bytes as they arrive; a connection that breaks off mid-reply is a :class:`ServerFailure`."""
    try:
        for chunk in response.iter_raw():
            if cancel is not None and cancel.is_set():
                return
            if chunk:
                yield chunk
    except httpx.ReadTimeout as exc:
        waited = response.request.extensions.get("timeout", {}).get("read")
        quiet = f" (nothing for {waited:g} s)" if waited else ""
        raise ServerFailure(f"{label} stopped sending in the middle of its reply{quiet}") from exc
    except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
        raise ServerFailure(f"{label} broke off in the middle of its reply ({_reason(exc)})") from exc
    except httpx.HTTPError as exc:
        raise ServerFailure(f"{label} reply failed: {_reason(exc)}") from exc


class DelimitedReader(Generic[T]):
    """Records separated by :attr:`delimiter`, from chunks split anywhere; subclasses parse one record."""

    delimiter: ClassVar[bytes]
    max_bytes: ClassVar[int]
    too_long: ClassVar[str]  # the ProtocolError message when an unterminated record outgrows max_bytes

    def __init__(self) -> None:
        self._buffer = b""

    def parse(self, raw: bytes) -> T:
        """One record (without its delimiter)."""
        raise NotImplementedError

    def feed(self, data: bytes) -> list[T]:
        """The records completed by ``data``."""
        self._buffer += data
        *complete, self._buffer = self._buffer.split(self.delimiter)
        if len(self._buffer) > self.max_bytes:
            raise ProtocolError(self.too_long)
        return [self.parse(raw) for raw in complete if raw.strip()]

    @property
    def pending(self) -> bool:
        """Bytes of an unterminated record are left (the stream ended mid-record)."""
        return bool(self._buffer.strip())


def new_suffix(previous: str, current: str) -> str:
    """What a cumulative text added (all of it when an earlier part was rewritten)."""
    return current.removeprefix(previous)


def text_events(previous: str, current: str) -> list[Event]:
    """The partial-text events for a reply text that grew from ``previous`` to ``current`` (first token marked)."""
    piece = new_suffix(previous, current)
    if not piece:
        return []
    first: list[Event] = [] if previous else [Mark("llm_first_token")]
    return [*first, TextOut(piece, "agent", final=False)]
