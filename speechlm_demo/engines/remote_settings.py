"""Typed settings shared by the engines that talk to a model server (vLLM-Omni, vLLM)."""

from __future__ import annotations

import os

from pydantic import Field

from ..turntaking.half_duplex import HalfDuplexSettings
from .base import EngineError
from .openai_http import ChatHTTP


class ServerSettings(HalfDuplexSettings):
    """Where the server is and how long to wait for it (plus the turn knobs of every half-duplex engine)."""

    url_env: str = Field("VLLM_URL", description="environment variable holding the server's base URL")
    url: str | None = Field(None, description="base URL used when the environment variable is unset")
    model: str = Field(description="model id as the server serves it")
    api_key_env: str | None = Field(None, description="environment variable holding a bearer token")
    connect_timeout_s: float = Field(5.0, gt=0)
    read_timeout_s: float = Field(120.0, gt=0, description="longest wait for the next streamed event")
    max_tokens: int | None = Field(256, gt=0)
    temperature: float | None = Field(None, ge=0)
    history_turns: int = Field(3, ge=0, description="earlier turns sent along (their audio and the replies)")

    def base_url(self) -> str:
        """The server URL from the environment (or ``url``); a clear error when neither is set."""
        value = os.environ.get(self.url_env) or self.url
        if not value:
            raise EngineError(f"set {self.url_env} to your server's base URL (e.g. http://gpu-box:8000)")
        return value

    def chat_http(self, label: str) -> ChatHTTP:
        """An HTTP client of the server, named ``"{label} at {url}"`` in its error messages."""
        url = self.base_url()
        return ChatHTTP(
            url,
            name=f"{label} at {url}",
            api_key_env=self.api_key_env,
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
        )
