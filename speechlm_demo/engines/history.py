"""A conversation's memory between turns, kept within ``turns`` exchanges and cut in blocks.

Past ``turns`` exchanges the oldest half goes at once (the last ``turns // 2`` exchanges stay, at least one),
starting at a user message. Cut in blocks, the start of the conversation stays put for several turns, so a
server's or llama.cpp's prompt cache still holds it; cutting one exchange every turn changed the prompt from
its first message on, and the whole history was read again before every first token (the cascade on 2 cores:
0.17 s to ~4 s from the 12th turn on).
"""

from __future__ import annotations

from typing import Any


def trim_history(history: list[dict[str, Any]], turns: int) -> None:
    """Cut ``history`` (user/assistant messages, oldest first) in place once it holds more than ``turns`` exchanges."""
    if len(history) <= 2 * turns:
        return
    start = len(history) - 2 * max(1, turns // 2)
    while start < len(history) - 1 and history[start].get("role") != "user":
        start += 1
    del history[:start]
