"""Identity leaks: a reply that names an engine, a model or a company unblinds (or biases) a blind vote.

Each catalogue entry lists the names that would give it away (``identity_names``: "Moshi", "Kyutai",
"Qwen", "Alibaba", ...). A reply leaks when its text (the engine's own transcript, or what the
round-trip ASR heard) contains any name of any catalogue engine, as whole words, in any case, with
spaces, hyphens or dots between the parts of a name (its words and camel-case pieces, and the letters of a short acronym) optional ("Open AI", "open-ai" and "OpenAI" match
"OpenAI"; "Qwen2.5" matches "Qwen"; "Moshiko" does not match "Moshi").
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

SEPARATOR = r"[\s.\-_]*"
ACRONYM = 4  # an all-capitals piece this short may be spelt with dots or spaces
PARTS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+|[^\W\d_A-Za-z]+")  # "OpenAI" -> Open, AI; "Qwen2" -> Qwen, 2


@lru_cache(maxsize=512)
def _pattern(name: str) -> re.Pattern[str]:
    pieces = []
    for part in PARTS.findall(name):
        letters = list(part) if part.isupper() and len(part) <= ACRONYM else [part]  # "AI" also as "A.I."
        pieces.append(SEPARATOR.join(re.escape(letter.lower()) for letter in letters))
    body = SEPARATOR.join(pieces)
    return re.compile(rf"(?<![^\W_]){body}(?![^\W\d_])")  # no letter or digit before, no letter after


def named(text: str, names: Iterable[str]) -> list[str]:
    """The names (as listed) that ``text`` contains, sorted and without repeats."""
    lowered = text.lower()
    found = {name for name in names if PARTS.search(name) and _pattern(name).search(lowered)}
    return sorted(found, key=str.lower)


def catalogue_names(entries: Iterable[object]) -> list[str]:
    """Every ``identity_names`` entry of the given catalogue entries, without repeats."""
    names: dict[str, str] = {}
    for entry in entries:
        for name in getattr(entry, "identity_names", ()):
            names.setdefault(name.lower(), name)
    return sorted(names.values(), key=str.lower)


def leak_label(names: Iterable[str]) -> str:
    """How a leak is stored: the names joined with ", " ("" = no leak)."""
    return ", ".join(names)


def leak_names(*labels: str) -> list[str]:
    """The names of stored leak labels (or single names) together, each once, sorted as :func:`named` sorts."""
    return sorted({name for label in labels for name in str(label).split(", ") if name}, key=str.lower)
