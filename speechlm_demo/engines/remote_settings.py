"""Typed settings shared by the engines that talk to a model server (vLLM-Omni, vLLM).

Written to the seam contract (issue 11): a pydantic model with ``extra="forbid"`` per engine. Until the seam
lands, :class:`TurnKnobs` stands in for ``HalfDuplexSettings`` (the turn-taking keys the turn layer reads
from the same ``defaults`` mapping), and :func:`read_settings` validates ``entry.defaults`` once.
"""

from __future__ import annotations

import os
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .base import EngineError


class TurnKnobs(BaseModel):
    """The half-duplex turn-taking keys (read by :mod:`speechlm_demo.turns`); stands in for HalfDuplexSettings."""

    model_config = ConfigDict(extra="forbid")

    threshold: float | None = None
    min_speech_ms: float | None = None
    pause_ms: float | None = None
    resume_ms: float | None = None
    end_silence_ms: float | None = None
    early_pause_db: float | None = None
    early_quiet_ms: float | None = None
    min_commit_silence_ms: float | None = None
    pre_roll_ms: float | None = None
    max_turn_s: float | None = None
    reply_timeout_s: float | None = None
    endpointing: Literal["silence", "transcript"] | None = None
    vad: Literal["energy", "silero"] | None = None


class ServerSettings(TurnKnobs):
    """Where the server is and how long to wait for it."""

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


S = TypeVar("S", bound=BaseModel)


def read_settings(model: type[S], defaults: dict, engine_id: str) -> S:
    """Validate a catalogue entry's ``defaults`` against ``model``; the error names the entry and field."""
    try:
        return model.model_validate(defaults)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(settings)'}: {e['msg']}" for e in exc.errors())
        raise EngineError(f"engine {engine_id!r}: invalid defaults: {problems}") from None
