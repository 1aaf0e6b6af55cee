"""Offline-capable CPU cascade: Silero VAD -> faster-whisper ASR -> llama.cpp / OpenAI-compatible LLM -> Piper TTS.

Each stage lives in its own module behind a small protocol (:class:`~.asr.ASR`, :class:`~.llm.LLM`,
:class:`~.tts.TTS`); :mod:`.pipeline` wires them into a half-duplex engine. Each stage class types its own
arguments, checked when the catalogue loads (:mod:`.stage_args`). Heavy libraries are imported only when a
stage is built.
"""

from __future__ import annotations
