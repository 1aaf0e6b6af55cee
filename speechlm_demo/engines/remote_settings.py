"""Typed settings shared by the engines that talk to an OpenAI-compatible server (vLLM-Omni, vLLM)."""

from __future__ import annotations

from pydantic import Field

from ..turntaking.half_duplex import HalfDuplexSettings
from .openai_http import ChatHTTP
from .server_address import ServerConnection


class OpenAIServerSettings(HalfDuplexSettings, ServerConnection):
    """Where the server is and how long to wait for it (plus the turn knobs of every half-duplex engine)."""

    url_env: str = Field("VLLM_URL", description="environment variable holding the server's base URL")
    model: str = Field(description="model id as the server serves it")
    api_key_env: str | None = Field(None, description="environment variable holding a bearer token")
    read_timeout_s: float = Field(120.0, gt=0, description="longest wait for the next streamed event")
    reply_timeout_s: float = Field(
        150.0, gt=0, description="a reply not finished by then is abandoned (longer than the waits above)"
    )
    first_byte_timeout_s: float = Field(
        15.0, gt=0, description="longest wait for a streamed reply to start (its response headers; a whole reply gets read_timeout_s)"
    )
    probe_timeout_s: float = Field(5.0, gt=0, description="longest wait for GET /v1/models (at load: is the server answering?)")
    max_tokens: int | None = Field(256, gt=0)
    temperature: float | None = Field(None, ge=0)
    history_turns: int = Field(3, ge=0, description="earlier turns sent along (their audio and the replies)")

    def chat_http(self, label: str) -> ChatHTTP:
        """An HTTP client of the server, named ``"{label} at {url}"`` in its error messages."""
        url = self.server_url(label, example="http://gpu-box:8000")
        return ChatHTTP(
            url,
            name=f"{label} at {url}",
            api_key_env=self.api_key_env,
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            first_byte_timeout=self.first_byte_timeout_s,
            probe_timeout=self.probe_timeout_s,
        )
