"""GLM-4-Voice's wire format and prompt (read from THUDM/GLM-4-Voice@eb00ce9142e8d98b0ed7c57cd47e0d6d5dce9a1a,
``model_server.py`` and ``web_demo.py``).

Request ``{"prompt", "temperature", "top_p", "max_new_tokens"}``; reply one JSON line per generated token,
``{"token_id": N, "error_code": 0}\\n``; a failure is the line ``{"text": "Server Error", "error_code": 1}``
(no token id). The prompt: ``<|system|>\\n{system}<|user|>\\n{input}<|assistant|>streaming_transcription\\n``
after the previous turns' prompt and completion; speech enters as
``<|begin_of_audio|><|audio_N|>...<|end_of_audio|>``. Token ids at or above ``<|audio_0|>``'s are speech
tokens (id - offset), the others text; ``<|user|>`` ends the reply.
"""

from __future__ import annotations

import json

from ..server_client import DelimitedReader, ProtocolError

SPEECH_SYSTEM = (
    "User will provide you with a speech instruction. Do it step by step. First, think about the instruction "
    "and respond in a interleaved manner, with 13 text token followed by 26 audio tokens. "
)
MAX_LINE_BYTES = 64 * 1024


def speech_input(tokens: list[int]) -> str:
    """The user's speech tokens as prompt text."""
    return "<|begin_of_audio|>" + "".join(f"<|audio_{t}|>" for t in tokens) + "<|end_of_audio|>"


def build_prompt(previous: str, user_input: str, system: str = SPEECH_SYSTEM) -> str:
    """The whole prompt: earlier turns (their prompt + completion), then this turn, as ``web_demo.py`` does."""
    inputs = previous.strip()
    if "<|system|>" not in inputs:
        inputs += f"<|system|>\n{system}"
    return inputs + f"<|user|>\n{user_input}<|assistant|>streaming_transcription\n"


class TokenLineReader(DelimitedReader[int]):
    """Token ids from newline-delimited JSON split anywhere; an error line raises :class:`ServerError`."""

    delimiter = b"\n"
    max_bytes = MAX_LINE_BYTES
    too_long = "a line of the reply exceeds 64 KiB"

    def parse(self, raw: bytes) -> int:
        """One line's token id."""
        return parse_line(raw)


class ServerError(RuntimeError):
    """The model server's own error line."""


def parse_line(line: bytes) -> int:
    """One line's token id."""
    try:
        data = json.loads(line)
    except (ValueError, UnicodeDecodeError):
        raise ProtocolError(f"not a JSON line: {line[:60]!r}") from None
    if not isinstance(data, dict):
        raise ProtocolError(f"not a token line: {line[:60]!r}")
    if data.get("error_code"):
        raise ServerError(f"{data.get('text') or 'error'} (error_code {data['error_code']})")
    token = data.get("token_id")
    if not isinstance(token, int) or isinstance(token, bool) or token < 0:
        raise ProtocolError(f"not a token line: {line[:60]!r}")
    return token


def speech_code(token: int, audio_offset: int, audio_tokens: int) -> int:
    """The speech code of GLM token id ``token`` (``>= audio_offset``); a :class:`ProtocolError` past the codebook.

    An id out of range would otherwise reach the decoder's embedding: an IndexError on the CPU, a device-side
    assert on CUDA that fails every later call in the process.
    """
    code = token - audio_offset
    if code >= audio_tokens:
        last = audio_offset + audio_tokens - 1
        raise ProtocolError(f"token id {token} is past the {audio_tokens} speech tokens (ids {audio_offset}-{last})")
    return code
