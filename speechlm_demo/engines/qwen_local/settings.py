"""Typed settings of the in-process Qwen engines (the catalogue entry's ``defaults``, validated)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from ...turntaking.half_duplex import HalfDuplexSettings
from ..cascade.settings import check_stage, stage_waits


class QwenLocalSettings(HalfDuplexSettings):
    """What both in-process Qwen engines read."""

    model: str = Field(description="hub id (e.g. Qwen/Qwen2.5-Omni-3B) or a local directory")
    revision: str | None = Field(None, description="hub revision (branch, tag or commit)")
    local_files_only: bool = Field(False, description="never reach the hub (a local dir or the hub cache only)")
    dtype: Literal["bfloat16", "float16", "float32"] = "bfloat16"
    attn_implementation: str | None = Field(None, description='e.g. "sdpa" or "flash_attention_2"')
    max_new_tokens: int = Field(192, ge=1, le=8192, description="longest text reply, in tokens")
    temperature: float = Field(0.7, ge=0.0, le=2.0, description="0 = greedy decoding")
    top_p: float = Field(0.9, gt=0.0, le=1.0)
    system_prompt: str | None = None
    history_turns: int = Field(3, ge=0, le=20, description="earlier turns (their audio and reply) kept as context")
    warm_up: bool = Field(True, description="one tiny generation at load, so the first turn runs at full speed")


class QwenOmniSettings(QwenLocalSettings):
    """Qwen2.5-Omni: the thinker writes, the talker and token2wav speak."""

    model: str = "Qwen/Qwen2.5-Omni-3B"
    voice: str = Field("Chelsie", description="a speaker of the model's spk_dict.pt (Chelsie, Ethan)")
    talker_max_new_tokens: int = Field(2048, ge=16, le=8192, description="longest spoken reply, in codec tokens")
    audio_chunk_s: float = Field(1.0, gt=0.0, le=30.0, description="reply audio is handed on in pieces this long")


class Qwen2AudioSettings(QwenLocalSettings):
    """Qwen2-Audio: speech in, text out; the cascade's TTS stage speaks the text."""

    model: str = "Qwen/Qwen2-Audio-7B-Instruct"
    tts: dict[str, Any] = Field(
        default_factory=lambda: {"kind": "piper", "voice": "offline"}, description="as the cascade's tts stage"
    )
    first_chunk_words: int = Field(4, ge=1, le=50, description="the first spoken chunk may end after this many words")

    @field_validator("tts")
    @classmethod
    def _tts_known(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_stage("tts", value)

    def waits_within_a_reply(self) -> dict[str, float]:
        """A speech server voice's wait counts too (``tts.kind: openai``)."""
        return {**super().waits_within_a_reply(), **stage_waits({"tts": self.tts})}
