"""LLaMA-Omni2's streamed reply (read from ictnlp/LLaMA-Omni2@c8afa9061a9c2d2c1919f7293f5492d946869752,
``llama_omni2/serve/model_worker.py`` and ``controller.py``).

The body is JSON frames, each followed by one NUL byte: ``{"text": cumulative text, "unit": cumulative
space-separated CosyVoice2 unit ids, "finalize": bool, "error_code": 0}``; a failure is
``{"text": server_error_msg, "error_code": N}`` (1: the worker failed; 2: the controller knows no worker for
the model, and it then also sends 3 because it goes on to post to an empty address; 3: the worker did not
answer the controller).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from ..server_client import DelimitedReader, ProtocolError

MAX_FRAME_BYTES = 4 * 1024 * 1024
ERROR_CODES = {
    1: "the model worker failed",
    2: "the controller has no worker serving this model",
    3: "the model worker did not answer the controller",
}


@dataclass(frozen=True)
class Frame:
    """One decoded frame (cumulative values)."""

    text: str
    units: list[int]
    finalize: bool
    error_code: int


class FrameReader(DelimitedReader[Frame]):
    """NUL-delimited JSON frames from chunks split anywhere."""

    delimiter = b"\0"
    max_bytes = MAX_FRAME_BYTES
    too_long = f"a frame exceeds {MAX_FRAME_BYTES} bytes without its NUL terminator"

    def parse(self, raw: bytes) -> Frame:
        """One frame."""
        return parse_frame(raw)


def parse_frame(raw: bytes) -> Frame:
    """One frame's JSON."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"not a JSON frame: {raw[:60]!r}") from None
    if not isinstance(data, dict) or "error_code" not in data or not isinstance(data.get("text", ""), str):
        raise ProtocolError(f"not a LLaMA-Omni2 frame: {raw[:60]!r}")
    code, finalize = data["error_code"], data.get("finalize", False)
    if not isinstance(code, int) or isinstance(code, bool):
        raise ProtocolError(f"error_code is not an integer: {str(code)[:60]!r}")
    if not isinstance(finalize, bool):
        raise ProtocolError(f"finalize is not true or false: {str(finalize)[:60]!r}")
    try:
        units = [int(u) for u in str(data.get("unit", "")).split()]
    except ValueError:
        raise ProtocolError(f"unit ids are not integers: {str(data.get('unit'))[:60]!r}") from None
    if any(unit < 0 for unit in units):
        raise ProtocolError(f"unit id {min(units)} is negative")
    return Frame(data.get("text", ""), units, finalize, code)


def check_units(units: list[int], codes: int) -> list[int]:
    """``units``, unless one is past the decoder's ``codes`` unit ids (a :class:`ProtocolError`).

    An id out of range would otherwise reach the decoder's embedding: an IndexError on the CPU, a device-side
    assert on CUDA that fails every later call in the process.
    """
    if units and max(units) >= codes:
        raise ProtocolError(f"unit id {max(units)} is past the unit decoder's {codes} (0-{codes - 1})")
    return units
