"""The catalogue settings of the cascade engine, checked when the catalogue loads.

The ``asr``/``llm``/``tts`` mappings name a stage ``kind`` and that stage's keyword arguments; an unknown
kind or an argument the stage does not take is refused here, before anything is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ...turntaking.half_duplex import HalfDuplexSettings
from .asr import FasterWhisperASR
from .llm import LlamaCppLLM, OpenAICompatibleLLM
from .tts import EspeakTTS, PiperTTS

STAGE_KINDS: dict[str, dict[str, type]] = {
    "asr": {"faster-whisper": FasterWhisperASR},
    "llm": {"llama-cpp": LlamaCppLLM, "openai": OpenAICompatibleLLM},
    "tts": {"piper": PiperTTS, "espeak": EspeakTTS},
}
FIXED = {"device"}  # arguments the engine passes itself, not the catalogue


def check_stage(stage: str, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` if its ``kind`` is known and every other key is an argument of that kind's class."""
    kinds = STAGE_KINDS[stage]
    kind = config.get("kind", next(iter(kinds)))
    if kind not in kinds:
        raise ValueError(f"unknown {stage} kind {kind!r}; known: {', '.join(kinds)}")
    accepted = set(inspect.signature(kinds[kind]).parameters) - FIXED
    unknown = sorted(set(config) - accepted - {"kind"})
    if unknown:
        raise ValueError(f"{stage} ({kind}) does not take {', '.join(unknown)} (known: {', '.join(sorted(accepted))})")
    return dict(config)


class CascadeSettings(HalfDuplexSettings):
    """Which VAD, how the first spoken chunk is cut, the system prompt and the three stages."""

    engine_reports_words: ClassVar[bool] = True  # its ASR stage's words reach the turn layer

    vad: Literal["silero", "energy"] = "silero"
    first_chunk_words: int = Field(4, ge=1, description="the first spoken chunk may end after this many words")
    warm_up: bool = Field(True, description="one tiny call per stage at load")
    system_prompt: str | None = None
    asr: dict[str, Any] = Field(default_factory=dict, description="kind (faster-whisper) and its arguments")
    llm: dict[str, Any] = Field(default_factory=dict, description="kind (llama-cpp | openai) and its arguments")
    tts: dict[str, Any] = Field(default_factory=dict, description="kind (piper | espeak) and its arguments")

    @field_validator("asr", "llm", "tts")
    @classmethod
    def _stage_known(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        return check_stage(info.field_name, value)
