"""The catalogue settings of the cascade engine, checked when the catalogue loads.

The ``asr``/``llm``/``tts`` mappings name a stage ``kind`` and that stage's keyword arguments; an unknown
kind, an argument the stage does not take or a value of the wrong type or range is refused here, before
anything is built (each argument as its class annotates it: :mod:`.stage_args`).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from ...turntaking.half_duplex import HalfDuplexSettings
from .asr import ASR_KINDS
from .llm import LLM_KINDS
from .stage_args import checked_arguments
from .tts_kinds import TTS_KINDS

STAGE_KINDS: dict[str, dict[str, type]] = {"asr": ASR_KINDS, "llm": LLM_KINDS, "tts": TTS_KINDS}


def check_stage(stage: str, config: Mapping[str, Any], kinds: Mapping[str, type] | None = None) -> dict[str, Any]:
    """``config`` with its arguments validated and coerced (:func:`~.stage_args.checked_arguments`), if its
    ``kind`` is one of ``kinds`` (default: the cascade's ``STAGE_KINDS[stage]``; the first when unset)."""
    kinds = STAGE_KINDS[stage] if kinds is None else kinds
    kind = config.get("kind", next(iter(kinds)))
    if kind not in kinds:
        raise ValueError(f"unknown {stage} kind {kind!r}; known: {', '.join(kinds)}")
    checked = checked_arguments(stage, kind, kinds[kind], config)
    return {key: checked.get(key, value) for key, value in config.items()}


STAGE_WAITS = ("connect_timeout", "first_byte_timeout", "read_timeout", "timeout_s")  # stage arguments that bound a wait


def stage_waits(stages: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """The waits of server stages (``llm.first_byte_timeout``, ``tts.timeout_s``, ...; the stage's defaults where
    unset), by ``stage.argument``: a reply is abandoned at ``reply_timeout_s`` whatever they say, so the engine's
    settings refuse any that is not shorter. ``stages`` maps a stage name to its checked mapping."""
    waits: dict[str, float] = {}
    for stage, config in stages.items():
        kinds = STAGE_KINDS[stage]
        kind = kinds.get(config.get("kind", next(iter(kinds))))
        parameters = inspect.signature(kind).parameters if kind is not None else {}
        for name in STAGE_WAITS:
            if name in parameters:
                waits[f"{stage}.{name}"] = float(config.get(name, parameters[name].default))
    return waits


class CascadeSettings(HalfDuplexSettings):
    """Which VAD, how the first spoken chunk is cut, the system prompt and the three stages."""

    engine_reports_words: ClassVar[bool] = True  # its ASR stage's words reach the turn layer

    vad: Literal["silero", "energy"] = "silero"
    first_chunk_words: int = Field(4, ge=1, description="the first spoken chunk may end after this many words")
    warm_up: bool = Field(True, description="one tiny call per stage at load")
    system_prompt: str | None = None
    asr: dict[str, Any] = Field(default_factory=dict, description="kind (faster-whisper) and its arguments")
    llm: dict[str, Any] = Field(default_factory=dict, description="kind (llama-cpp | openai) and its arguments")
    tts: dict[str, Any] = Field(default_factory=dict, description="kind (piper | espeak | openai) and its arguments")

    def recogniser(self) -> dict[str, Any] | None:
        """Its ASR stage's mapping: the turn layer's second hearing (``lookback_ms``) uses the same recogniser."""
        return self.asr

    def waits_within_a_reply(self) -> dict[str, float]:
        """Its server stages' waits count too (see :func:`stage_waits`)."""
        return {**super().waits_within_a_reply(), **stage_waits({"llm": self.llm, "tts": self.tts})}

    @field_validator("asr", "llm", "tts")
    @classmethod
    def _stage_known(cls, value: dict[str, Any], info: Any) -> dict[str, Any]:
        return check_stage(info.field_name, value)
