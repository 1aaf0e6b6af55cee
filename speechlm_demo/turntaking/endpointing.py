"""Is the user done? A completeness judgement on the words heard so far.

Silence alone cannot tell "What is the capital of France?" (answer now) from "Well..." or "Can you
explain..." (the user is thinking). The turn layer starts a reply speculatively at a short pause; the
judge below decides from the transcript whether that reply may be played now or must wait for the
user to go on (or for a long silence).
"""

from __future__ import annotations

import re

# Words that cannot end a finished sentence, even one the ASR closed with "?" or ".".
DANGLING = frozenset(
    """
    a an the this these those my your his her its our their some every each
    and or but because if although though unless whether than nor
    of to in on at by for with from about into onto over under between through during without
    like versus via per plus minus multiplied divided
    explain describe tell give show let
    um uh erm er hmm well
    """.split()
)
# Words that end an unpunctuated fragment ("what is the", "i was wondering if", "and so").
DANGLING_UNPUNCTUATED = DANGLING | frozenset(
    """
    so yet as when while until that which who whom whose where why how what
    is are was were be been am do does did have has had will would can could should shall may might must
    i you he she it we they me him us them
    think know want need wonder mean say ask find help okay ok anyway actually basically maybe
    """.split()
)
# A whole transcript that is only a filler or an opener.
OPENERS = frozenset(
    """
    well so um uh erm er hmm okay ok right yes yeah no hey hi hello and but also anyway actually
    basically listen look see alright
    """.split()
)
# Multi-word endings that ask for more.
DANGLING_ENDINGS = (
    "tell me", "can you", "could you", "would you", "i want", "i need", "do you know", "what about", "how about",
    "to know", "wonder", "wondering",
)
# First words (after an opener) of a sentence that asks something: a question or a request.
ASKING_STARTS = frozenset(
    """
    what who whom whose where when why how which is are am was were do does did can could would will should shall
    may might have has had isn't aren't wasn't weren't don't doesn't didn't can't couldn't won't wouldn't
    shouldn't haven't hasn't what's who's where's when's why's how's
    tell give explain describe show name list recommend suggest help play say define translate find write make
    calculate compute compare count spell sing summarize summarise teach remind read repeat let please convert
    check search look guess pick choose imagine
    """.split()
)
# Phrases that make a sentence a request wherever they stand ("I'd like to know how tall it is").
ASKING_PHRASES = (
    "like to know", "want to know", "need to know", "wondering", "wonder", "tell me", "can you", "could you",
    "would you", "will you", "do you know", "help me", "please", "let me know", "you to",
)
_SENTENCE_END = re.compile(r"[.!?…]+\s+")

_WORD = re.compile(r"[a-z0-9']+")  # Whisper writes numbers as digits: "How much is 20 divided by 4?" ends in "4"


def asks(transcript: str) -> bool:
    """True when the last sentence of ``transcript`` asks something (a question or a request), False for a
    statement ("I am going to Italy next week.", "I need some advice.") that may only lead into the question."""
    text = transcript.strip().lower()
    if text.endswith("?"):
        return True
    sentences = [part for part in _SENTENCE_END.split(text) if _WORD.search(part)]
    if not sentences:
        return False
    last = sentences[-1]
    words = _WORD.findall(last)
    while len(words) > 1 and words[0] in OPENERS:
        words = words[1:]
    if words[0] in ASKING_STARTS:
        return True
    joined = " ".join(_WORD.findall(last))
    return any(f" {phrase} " in f" {joined} " for phrase in ASKING_PHRASES)


def is_complete(transcript: str) -> bool:
    """True when ``transcript`` reads like a finished request, False when the user is mid-thought."""
    text = transcript.strip().lower()
    if not text:
        return False
    if text.endswith(("...", "…", ",", ";", ":", "-", "–")):
        return False
    words = _WORD.findall(text)
    if not words:
        return False
    if all(w in OPENERS for w in words):
        return False
    tail = " ".join(words[-3:])
    if any(tail.endswith(ending) for ending in DANGLING_ENDINGS):
        return False
    closed = text.endswith(("?", ".", "!"))
    return words[-1] not in (DANGLING if closed else DANGLING_UNPUNCTUATED)
