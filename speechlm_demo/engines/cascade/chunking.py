"""Split a streamed LLM reply into speakable chunks, so TTS can start before the reply is complete.

A chunk ends at a sentence end (``. ! ? ;`` or a line break) or, once it holds at least
``min_clause_words`` words, at a clause comma or colon. Punctuation only counts when followed by
whitespace, so decimals (``3.5``) and thousands (``3,000``) never split; ``Dr.``-style abbreviations and
initials don't end sentences, and a chunk must contain a letter (``1.`` of a list stays with its item).

The first chunk is what the listener waits for, so it may also end without punctuation: once it holds
``first_max_words`` words, it is cut before the next joining word ("because", "which", "with", ...) or verb
("is", "was", ...), where a speaker could pause too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

# Words that are never a sentence's last word when followed by "." (so "No." still ends a sentence).
ABBREVIATIONS = frozenset(
    "mr mrs ms dr prof sr jr st mt vs etc approx dept fig inc ltd corp cf lt sgt capt rev hon"
    " jan feb aug sept oct nov dec".split()
)
# A punctuation run with optional closing quotes/brackets, confirmed by whitespace; or a line break.
_CUT = re.compile(r"(?P<punct>[.!?;:,…]+)(?P<close>[\"'”’)\]]*)\s+|\n+")
_WORD = re.compile(r"\S+")
_LETTER = re.compile(r"[^\W\d_]")
_MARKUP = re.compile(r"[*#`_~]+")
# Words a first chunk may be cut before (a natural place for a breath): joining words, and the verb after
# a sentence's subject ("The capital of France | is Paris.").
JOINING_WORDS = frozenset(
    "and but or because which that who whom whose when where while with without from of in on at to for by"
    " as than about around over under after before since until into".split()
)
FIRST_CUT_WORDS = JOINING_WORDS | frozenset("is are was were has have can will".split())


class SentenceChunker:
    """Incremental chunker: :meth:`feed` text pieces, then :meth:`flush` the rest."""

    def __init__(
        self, min_clause_words: int = 6, first_clause_words: int | None = None, first_max_words: int | None = None
    ) -> None:
        self.min_clause_words = min_clause_words
        self.first_clause_words = min_clause_words if first_clause_words is None else first_clause_words
        self.first_max_words = first_max_words
        self._emitted = 0
        self._buffer = ""

    def feed(self, piece: str) -> list[str]:
        """Add a piece of the stream; return the chunks it completes."""
        self._buffer += piece
        chunks: list[str] = []
        while (cut := self._next_cut()) is not None:
            chunks.append(self._buffer[: cut[0]].strip())
            self._buffer = self._buffer[cut[1] :]
            self._emitted += 1
        return chunks

    def flush(self) -> str | None:
        """End of stream: the remaining text, if any."""
        rest, self._buffer = self._buffer.strip(), ""
        return rest or None

    def _next_cut(self) -> tuple[int, int] | None:
        """(end of the chunk, start of the remainder) at the first real boundary, if any."""
        for match in _CUT.finditer(self._buffer):
            head = self._buffer[: match.start()]
            if _LETTER.search(head) and self._is_boundary(match.group("punct"), head):
                return match.end("close") if match.group("punct") else match.start(), match.end()
        if self._emitted == 0 and self.first_max_words:
            return self._first_cut()
        return None

    def _first_cut(self) -> tuple[int, int] | None:
        """Before a joining word, once the first chunk is long enough (only complete words count)."""
        words = list(_WORD.finditer(self._buffer))
        def joining(index: int) -> bool:
            return words[index].group().lower().strip(",.;:") in FIRST_CUT_WORDS

        complete = len(words) if self._buffer[-1:].isspace() else len(words) - 1  # the last word may still grow
        for index in range(self.first_max_words, complete):
            if joining(index) and not joining(index - 1):
                return words[index - 1].end(), words[index].start()
        return None

    def _is_boundary(self, punctuation: str | None, head: str) -> bool:
        if punctuation is None:  # line break
            return True
        if punctuation in (",", ":"):
            needed = self.first_clause_words if self._emitted == 0 else self.min_clause_words
            return len(_WORD.findall(head)) >= needed
        if punctuation == ".":
            last = _WORD.findall(head)[-1].strip("\"'“‘([")
            is_initial = len(last) == 1 and last.isupper()
            return not (last.lower() in ABBREVIATIONS or is_initial or "." in last)
        return True


def speakable_chunks(pieces: Iterable[str], min_clause_words: int = 6) -> Iterator[str]:
    """Chunks of a whole token stream (see :class:`SentenceChunker`)."""
    chunker = SentenceChunker(min_clause_words)
    for piece in pieces:
        yield from chunker.feed(piece)
    rest = chunker.flush()
    if rest:
        yield rest


def clean_for_speech(text: str) -> str:
    """Drop Markdown emphasis/heading/code marks that a TTS would otherwise read out."""
    return " ".join(_MARKUP.sub(" ", text).split())
