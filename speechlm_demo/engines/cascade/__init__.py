"""Offline-capable CPU cascade: Silero VAD -> faster-whisper ASR -> llama.cpp / OpenAI-compatible LLM -> Piper TTS.

Each stage lives in its own module behind a small protocol (:class:`~.asr.ASR`, :class:`~.llm.LLM`,
:class:`~.tts.TTS`); :mod:`.pipeline` wires them into a half-duplex engine. Heavy libraries are imported
only when a stage is built.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from ..base import EngineError


def stage_settings(stage: str, factory: Any, config: Mapping[str, Any], **fixed: Any) -> dict[str, Any]:
    """Keyword arguments for ``factory`` from a catalogue mapping, minus ``kind``; unknown keys raise."""
    settings = {key: value for key, value in config.items() if key != "kind"}
    accepted = set(inspect.signature(factory).parameters)
    unknown = sorted(set(settings) - accepted)
    if unknown:
        known = ", ".join(sorted(accepted - set(fixed)))
        raise EngineError(f"{stage}: unknown setting(s) {', '.join(unknown)} (known: {known})")
    return {**settings, **fixed}
