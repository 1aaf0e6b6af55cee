"""Show untrusted text (transcripts, engine messages) inside Markdown as plain text."""

from __future__ import annotations

import html
import re

_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~:])")


def plain(text: str) -> str:
    """``text`` with HTML escaped and Markdown punctuation backslash-escaped, on one line."""
    one_line = " ".join(str(text).split())
    return _MARKDOWN.sub(r"\\\1", html.escape(one_line, quote=True))
