"""POST an OpenAI-style request and read the reply: server-sent events or one JSON body.

The one HTTP/SSE client of every OpenAI-compatible server: the cascade's ``openai`` LLM stage, the vLLM-Omni
and the speech-in/text-out engines (and its ``/v1/audio/speech`` TTS stage). Every failure becomes an
:class:`~speechlm_demo.engines.base.EngineError` whose message a user can act on: server down, HTTP
4xx/5xx (the server's own ``error.message`` quoted), an error event after HTTP 200
(``data: {"error": ...}`` then ``data: [DONE]``, as vLLM's ``create_streaming_error_response`` sends it),
a stream that stops before ``[DONE]``, or a chunk that is not JSON.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager, nullcontext
from typing import Any

import httpx

from .base import EngineError
from .read_aside import read_aside
from .server_address import resolve_url

log = logging.getLogger(__name__)

_SSE_FIELDS = ("data:", "event:", "id:", "retry:", ":")


def endpoint(base_url: str, path: str) -> str:
    """``base_url`` (with or without a trailing ``/v1``) joined with an API path such as ``/chat/completions``."""
    root = base_url.strip().rstrip("/")
    if not root.startswith(("http://", "https://")):
        raise EngineError(f"{base_url!r} is not an http(s) URL (expected e.g. http://gpu-box:8091)")
    return root + path if root.endswith("/v1") else root + "/v1" + path


def error_text(body: str) -> str:
    """The ``error.message`` of an OpenAI/vLLM error body, or the body itself (shortened)."""
    try:
        value = json.loads(body)
    except json.JSONDecodeError:
        return body.strip()[:300] or "(empty body)"
    error = value.get("error") if isinstance(value, dict) else None
    if isinstance(error, dict):
        kind = error.get("type")
        message = str(error.get("message", "")).strip()
        return f"{message} ({kind})" if kind else message
    if isinstance(error, str):
        return error
    if isinstance(value, dict) and isinstance(value.get("detail"), str):  # FastAPI's HTTPException body
        return value["detail"]
    return body.strip()[:300]


class ServerSilent(EngineError):
    """The server accepts connections but does not answer (busy or hung)."""


class ChatHTTP:
    """One HTTP client for one server; ``read_timeout`` bounds the wait for each streamed event.

    ``first_byte_timeout`` (when set) bounds the wait for a streamed reply to start, i.e. for its response
    headers, which a server that streams sends before the first token; ``probe_timeout`` bounds
    ``GET /v1/models``. Both catch a server that accepts connections but says nothing long before
    ``read_timeout`` would (a whole, unstreamed reply only starts when it is done, so it gets ``read_timeout``).
    """

    def __init__(
        self,
        base_url: str,
        *,
        name: str,
        api_key_env: str | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        first_byte_timeout: float | None = None,
        probe_timeout: float | None = None,
    ) -> None:
        self.base_url = base_url
        self.name = name
        self.api_key_env = api_key_env
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.first_byte_timeout = first_byte_timeout
        self.probe_timeout = probe_timeout
        self._client = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout))

    def _headers(self, accept: str = "text/event-stream, application/json") -> dict[str, str]:
        headers = {"Accept": accept}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise EngineError(f"{self.name} needs an API key: set the environment variable {self.api_key_env}")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def get_json(self, path: str) -> dict[str, Any]:
        """GET ``/v1{path}`` and return its JSON object."""
        url = endpoint(self.base_url, path)
        wait = self.probe_timeout or self.read_timeout
        with self._guard(url), self._silence_guard(f"no answer to GET {url} within {wait:g} s"):
            response = self._client.get(url, headers=self._headers(), timeout=httpx.Timeout(wait, connect=self.connect_timeout))
            if response.status_code >= 400:
                raise EngineError(f"{self.name} {url} answered HTTP {response.status_code}: {error_text(response.text)}")
            return parse_object(response.text, self.name)

    def model_ids(self) -> list[str]:
        """The model ids ``GET /v1/models`` lists (its ``data`` list of model cards)."""
        listed = self.get_json("/models").get("data")
        if not isinstance(listed, list):
            raise EngineError(f"{self.name} sent a model list whose data is not a list: {str(listed)[:100]!r}")
        return [str(m["id"]) for m in listed if isinstance(m, dict) and m.get("id")]

    def served_models(self) -> list[str] | None:
        """:meth:`model_ids`, or None when the server cannot tell now (down, failing, garbled); a server that
        accepts connections but does not answer raises :class:`ServerSilent`."""
        try:
            return self.model_ids()
        except ServerSilent:
            raise
        except EngineError as exc:
            log.warning("could not list the models of %s: %s", self.name, exc)
            return None

    def check_model(self, model: str | None, url_env: str) -> list[str] | None:
        """Refuse a server that accepts connections but does not answer, or that is up but does not serve
        ``model`` (one server serves one model; None: any); the models it serves (None: it cannot tell now)."""
        served = self.served_models()
        if served and model is not None and model not in served:
            raise EngineError(
                f"{self.name} serves {', '.join(served)}, not {model}: point {url_env} at a server of {model} "
                "(or change the row's model setting)"
            )
        return served

    def post(self, path: str, payload: dict[str, Any], cancel: threading.Event) -> Iterator[dict[str, Any]]:
        """POST ``payload``; yield each streamed event's JSON object (or the one JSON body), then stop.

        The reply is read aside (:func:`~.read_aside.read_aside`): the caller stops at once after ``cancel`` even
        while the server says nothing (a barge-in waits for no first-byte or read timeout); the reader closes the
        connection as soon as its read returns.
        """
        yield from read_aside(f"post {path}", lambda stop: self._streamed(path, payload, stop), cancel)

    def _streamed(self, path: str, payload: dict[str, Any], stop: threading.Event) -> Iterator[dict[str, Any]]:
        url = endpoint(self.base_url, path)
        first_byte = self.first_byte_timeout if payload.get("stream") else None
        timeout = httpx.Timeout(first_byte or self.read_timeout, connect=self.connect_timeout)
        request = self._client.build_request("POST", url, json=payload, headers=self._headers(), timeout=timeout)
        with self._guard(url):
            silence = (  # without a first-byte timeout a read timeout here is the plain one, which _guard reports
                nullcontext()
                if first_byte is None
                else self._silence_guard(f"the reply did not start within {first_byte:g} s (first-byte timeout)")
            )
            with silence:
                response = self._client.send(request, stream=True)
            # the body's reads take the request's read timeout when they start (httpcore): from here each
            # streamed event may take read_timeout
            request.extensions["timeout"] = {**request.extensions["timeout"], "read": self.read_timeout}
            try:
                yield from self._events(response, stop)
            finally:
                response.close()

    def _events(self, response: httpx.Response, stop: threading.Event) -> Iterator[dict[str, Any]]:
        if response.status_code >= 400:
            body = response.read().decode("utf-8", "replace")
            raise EngineError(f"{self.name} answered HTTP {response.status_code}: {error_text(body)}")
        if response.headers.get("content-type", "").startswith("application/json"):
            yield parse_object(response.read().decode("utf-8", "replace"), self.name)
            return
        yield from sse_events(response.iter_lines(), stop, self.name)

    def post_for_bytes(
        self, path: str, payload: dict[str, Any], accept: str = "*/*", cancel: threading.Event | None = None
    ) -> bytes | None:
        """POST ``payload`` and return the whole body (e.g. ``/audio/speech``'s WAV); None once ``cancel`` is set.

        Read aside like :meth:`post`: a barge-in does not wait for a slow server, and nothing is sent once it is
        set. The abandoned request closes its connection when the first bytes of the body come (the server may
        notice and stop), and ends at the latest with its timeouts.
        """
        url = endpoint(self.base_url, path)
        with closing(read_aside(f"post {path}", lambda stop: [self._body(url, payload, accept, stop)], cancel or threading.Event())) as read:
            return next(read, None)

    def _body(self, url: str, payload: dict[str, Any], accept: str, stop: threading.Event) -> bytes | None:
        with self._guard(url), self._client.stream("POST", url, json=payload, headers=self._headers(accept)) as response:
            if response.status_code >= 400:
                body = response.read().decode("utf-8", "replace")
                raise EngineError(f"{self.name} answered HTTP {response.status_code}: {error_text(body)}")
            parts = []
            for part in response.iter_bytes():
                if stop.is_set():
                    return None  # leaving the block closes the connection mid-body
                parts.append(part)
            return b"".join(parts)

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def _guard(self, url: str) -> _TransportErrors:
        return _TransportErrors(self.name, url, self.read_timeout)

    @contextmanager
    def _silence_guard(self, what: str) -> Iterator[None]:
        """A read timeout inside becomes :class:`ServerSilent` saying ``what`` (e.g. which wait ran out)."""
        try:
            yield
        except httpx.ReadTimeout:
            raise ServerSilent(f"{self.name} accepts connections but does not answer ({what}): is it busy or hung?") from None


def stage_client(
    stage: str, server: str, path: str, base_url: str | None, base_url_env: str | None, **options: Any
) -> tuple[ChatHTTP, str]:
    """The client of a cascade stage's server (``$base_url_env`` wins over ``base_url``) and its ``path`` URL.

    ``server`` (e.g. ``"LLM server"``) names it in messages; ``options`` go to :class:`ChatHTTP`.
    """
    url = resolve_url(base_url, base_url_env, f"{stage} ({server})", setting="base_url")
    full = endpoint(url, path)
    return ChatHTTP(url, name=f"the {server} {full}", **options), full


class _TransportErrors:
    """Turn httpx's transport exceptions into EngineErrors naming the server."""

    def __init__(self, name: str, url: str, read_timeout: float) -> None:
        self.name, self.url, self.read_timeout = name, url, read_timeout

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, httpx.HTTPError):
            return False
        if isinstance(exc, httpx.ConnectTimeout):
            raise EngineError(f"connecting to {self.name} timed out") from None
        if isinstance(exc, httpx.ConnectError):
            raise EngineError(f"cannot connect to {self.name} (is the server running?): {exc}") from None
        if isinstance(exc, httpx.ReadTimeout):
            raise EngineError(f"{self.name} sent nothing for {self.read_timeout:g} s (read timeout)") from None
        if isinstance(exc, httpx.RemoteProtocolError):
            raise EngineError(f"{self.name} closed the connection mid-reply: {exc}") from None
        raise EngineError(f"{self.name} failed: {type(exc).__name__}: {exc}") from None


def parse_object(text: str, name: str) -> dict[str, Any]:
    """One JSON object; an ``{"error": ...}`` object raises with the server's message."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineError(f"{name} sent malformed JSON ({exc.msg}): {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise EngineError(f"{name} sent unexpected JSON: {text[:200]!r}")
    if "error" in value and value["error"] is not None:
        raise EngineError(f"{name} reported an error: {error_text(text)}")
    return value


def sse_events(lines: Iterable[str], cancel: threading.Event, name: str) -> Iterator[dict[str, Any]]:
    """The JSON objects of ``data:`` lines up to ``data: [DONE]``; a stream ending before it raises."""
    for line in lines:
        if cancel.is_set():
            return
        if not line:
            continue
        if not line.startswith(_SSE_FIELDS):
            raise EngineError(f"{name} sent malformed server-sent events: {line[:200]!r}")
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        yield parse_object(data, name)
    if not cancel.is_set():
        raise EngineError(f"{name} stopped mid-reply (the stream ended without [DONE])")


def chat_text(events: Iterable[dict[str, Any]], name: str) -> Iterator[str]:
    """The reply text of chat-completion objects: ``choices[0].delta.content`` (streamed) or ``.message.content``."""
    for event in events:
        choices = event.get("choices")
        if not isinstance(choices, list):
            raise EngineError(f"{name} sent a chunk without choices: {str(event)[:200]}")
        for choice in choices[:1]:
            part = (choice.get("delta") or choice.get("message")) if isinstance(choice, dict) else None
            if part is not None and not isinstance(part, dict):
                raise EngineError(f"{name} sent a choice whose delta is not an object: {str(choice)[:200]}")
            if part and part.get("content"):
                yield str(part["content"])
