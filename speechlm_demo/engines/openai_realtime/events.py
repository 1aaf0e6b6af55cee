"""Client events to send and server event names to read, GA and beta.

Read from the ``openai`` Python package 3.57.0, ``openai/types/realtime/`` (the client events of
``session_update_event.py``, ``input_audio_buffer_{append,commit,clear}_event.py``,
``response_{create,cancel}_event.py``, ``conversation_item_{create,truncate}_event.py``; GA interface:
``session.update`` with ``session.type = "realtime"``, ``audio.input.format {type: "audio/pcm", rate}``,
``audio.input.turn_detection``; server ``response.output_audio.delta`` etc.). The beta interface
(header ``OpenAI-Beta: realtime=v1``, still served for ``gpt-4o-realtime-preview``) names a few events
differently and configures the session with flat fields; :func:`ga_name` maps its names onto the GA ones.
"""

from __future__ import annotations

import base64
import itertools
from typing import Any

import numpy as np

from ...audio import to_int16

BETA_NAMES = {
    "response.audio.delta": "response.output_audio.delta",
    "response.audio.done": "response.output_audio.done",
    "response.audio_transcript.delta": "response.output_audio_transcript.delta",
    "response.audio_transcript.done": "response.output_audio_transcript.done",
    "response.text.delta": "response.output_text.delta",
    "response.text.done": "response.output_text.done",
    "conversation.item.created": "conversation.item.added",
}
_ids = itertools.count(1)


def ga_name(event_type: str) -> str:
    """The GA name of a server event (beta names mapped; GA names unchanged)."""
    return BETA_NAMES.get(event_type, event_type)


def _event(kind: str, **fields: Any) -> dict[str, Any]:
    return {"type": kind, "event_id": f"evt_client_{next(_ids)}", **fields}


def session_update(
    *,
    beta: bool,
    instructions: str | None,
    voice: str | None,
    turn_detection: dict[str, Any] | None,
    transcription_model: str | None,
    sample_rate: int,
    max_output_tokens: int | str | None = None,
) -> dict[str, Any]:
    """``session.update``: PCM16 in and out, the given turn detection (None: we commit turns ourselves)."""
    transcription = {"model": transcription_model} if transcription_model else None
    if beta:
        session: dict[str, Any] = {
            "modalities": ["audio", "text"],
            "input_audio_format": "pcm16",
            "output_audio_format": "pcm16",
            "turn_detection": turn_detection,
            "input_audio_transcription": transcription,
        }
        if voice:
            session["voice"] = voice
    else:
        audio_out: dict[str, Any] = {"format": {"type": "audio/pcm", "rate": sample_rate}}
        if voice:
            audio_out["voice"] = voice
        session = {
            "type": "realtime",
            "output_modalities": ["audio"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": sample_rate},
                    "turn_detection": turn_detection,
                    "transcription": transcription,
                },
                "output": audio_out,
            },
        }
    if instructions:
        session["instructions"] = instructions
    if max_output_tokens is not None:
        session["max_response_output_tokens" if beta else "max_output_tokens"] = max_output_tokens
    return _event("session.update", session=session)


def append_audio(pcm: np.ndarray) -> dict[str, Any]:
    """``input_audio_buffer.append`` with float32 samples as base64 little-endian PCM16."""
    return _event("input_audio_buffer.append", audio=base64.b64encode(to_int16(pcm).astype("<i2").tobytes()).decode("ascii"))


def commit() -> dict[str, Any]:
    """``input_audio_buffer.commit``: the user's turn is over."""
    return _event("input_audio_buffer.commit")


def clear_input() -> dict[str, Any]:
    """``input_audio_buffer.clear``."""
    return _event("input_audio_buffer.clear")


def response_create() -> dict[str, Any]:
    """``response.create`` with the session's settings."""
    return _event("response.create")


def response_cancel() -> dict[str, Any]:
    """``response.cancel``: stop the reply in progress."""
    return _event("response.cancel")


def truncate(item_id: str, audio_end_ms: int) -> dict[str, Any]:
    """``conversation.item.truncate``: the user heard only ``audio_end_ms`` of the assistant's item."""
    return _event("conversation.item.truncate", item_id=item_id, content_index=0, audio_end_ms=max(0, int(audio_end_ms)))


def text_item(role: str, text: str, *, beta: bool) -> dict[str, Any]:
    """``conversation.item.create`` of an earlier turn's words (a user or assistant message)."""
    if role == "user":
        kind = "input_text"
    else:
        kind = "text" if beta else "output_text"
    return _event("conversation.item.create", item={"type": "message", "role": role, "content": [{"type": kind, "text": text}]})


def object_field(event: dict[str, Any], key: str) -> dict[str, Any]:
    """``event[key]`` when it is a JSON object, else ``{}`` (absent, null, or garbage from the server)."""
    value = event.get(key)
    return value if isinstance(value, dict) else {}


def decode_audio_delta(delta: Any) -> np.ndarray:
    """An audio delta (base64 PCM16) as float32 samples; ValueError (TypeError: not a string) for anything else."""
    if not isinstance(delta, str):
        raise TypeError(f"an audio delta must be a base64 string, not {type(delta).__name__}")
    raw = base64.b64decode(delta, validate=True)
    if len(raw) % 2:
        raise ValueError(f"an audio delta of {len(raw)} bytes is not 16-bit PCM")
    return np.frombuffer(raw, dtype="<i2").astype(np.float32) / 32768.0
