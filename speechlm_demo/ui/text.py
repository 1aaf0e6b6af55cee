"""Show untrusted text (transcripts, engine messages) inside Markdown as plain text."""

from __future__ import annotations

import re
import string

_PUNCTUATION = re.compile("([" + re.escape(string.punctuation) + "])")


def plain(text: str) -> str:
    """``text`` on one line with every ASCII punctuation mark backslash-escaped: Markdown then shows it
    literally, and no HTML tag, entity, link or emphasis can form."""
    return _PUNCTUATION.sub(r"\\\1", " ".join(str(text).split()))
