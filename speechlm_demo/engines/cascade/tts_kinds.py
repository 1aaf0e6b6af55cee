"""The kinds of the cascade's TTS stage (catalogue ``tts.kind``), shared by every engine that speaks through it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .stage_args import build_stage, stage_kinds
from .tts import TTS, EspeakTTS, PiperTTS
from .tts_openai import OpenAISpeechTTS

TTS_KINDS: dict[str, type] = stage_kinds(PiperTTS, EspeakTTS, OpenAISpeechTTS)  # the first is the default


def build_tts(config: Mapping[str, Any]) -> TTS:
    """A TTS stage from the catalogue's ``tts`` mapping (``kind: piper``, ``espeak`` or ``openai``)."""
    return build_stage("tts", TTS_KINDS, config)
