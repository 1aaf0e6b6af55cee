"""The catalogue settings of the Moshi engines (no torch here: the catalogue validates them at load)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ...turntaking.full_duplex import FullDuplexSettings
from ..server_address import ServerAddress

URL_ENV = "MOSHI_SERVER_URL"


class MoshiSettings(FullDuplexSettings):
    """In-process Moshi: where the weights come from, their dtype, sampling and warm-up."""

    audible_dbfs: float = Field(-50.0, le=0.0, description="Moshi's own quiet output stays under this")
    hf_repo: str | None = Field(None, description="hub repo of the checkpoint (default: the moshi package's)")
    moshi_weights: str | None = Field(None, description="local LM weights overriding the repo's")
    mimi_weights: str | None = Field(None, description="local Mimi weights overriding the repo's")
    tokenizer: str | None = Field(None, description="local SentencePiece model overriding the repo's")
    config: str | None = Field(None, description="local config.json overriding the repo's")
    dtype: Literal["bfloat16", "float16", "float32", "bf16", "fp16", "fp32"] = "bfloat16"
    temperature: float | None = Field(None, ge=0.0, description="audio sampling temperature (alias of temp)")
    temp: float | None = Field(None, ge=0.0, description="audio sampling temperature")
    temp_text: float | None = Field(None, ge=0.0, description="text sampling temperature")
    top_k: int | None = Field(None, ge=1, description="audio top-k")
    top_k_text: int | None = Field(None, ge=1, description="text top-k")
    warmup_frames: int = Field(4, ge=1, description="silent frames run after (re)building the generator")


class MoshiRemoteSettings(FullDuplexSettings, ServerAddress):
    """A moshi-server client: where the server is (``$MOSHI_SERVER_URL`` wins over ``url``) and how hard to try."""

    audible_dbfs: float = Field(-50.0, le=0.0, description="Moshi's own quiet output stays under this")
    url_env: str = URL_ENV
    handshake_timeout_s: float = Field(10.0, gt=0.0)
    reconnect_attempts: int = Field(3, ge=0, description="reconnects in a row that fail before giving up")
    healthy_after_s: float = Field(
        5.0, gt=0.0, description="a connection counts as working (the reconnect count restarts) once it answered this much audio"
    )
    reconnect_backoff_s: float = Field(0.5, ge=0.0)
    max_lag_s: float = Field(1.0, gt=0.0, description="audio sent but not answered before input is dropped")
    silence_timeout_s: float = Field(
        5.0, gt=0.0, description="the server counts as lost (and is reconnected) after answering nothing this long while audio is unanswered"
    )
