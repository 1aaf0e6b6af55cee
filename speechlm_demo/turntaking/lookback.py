"""A second hearing of a paused turn without its last moments (``lookback_ms``): a check on finished words.

A recogniser that hears a turn up to a pause must make its last word out of the sound just before the
silence, and Whisper base closes a half-said request with a word it made up as readily as with one it heard:
"How long does it take to | fly from London to Tokyo" is heard at the pause as "How on does it take two?",
"Could you explain what | the stock market actually does" as "Could you explain what that?", both words
read as a finished question and the reply cuts the user off. Heard again without the last ``lookback_ms``
of voice (the end of the last word clipped), the same audio gave "How on does it take to?" and "Could you
explain what the": words that dangle. A turn that is really over reads finished in both hearings ("What is
the boiling point of water?" stays itself: the recogniser still hears the clipped word).

So words that read finished commit early only if the second hearing does not dangle; if it does, the reply
waits (for more words, or for ``end_silence_ms``), it is never dropped on this evidence alone. The second
hearing runs beside the first (the same recogniser configuration, its own instance), so it costs CPU, not
time, where two cores are free. A failing or empty second hearing leaves the first one's verdict. It checks
words only: under ``combined``, audio surer than ``smart_turn_alone_above`` still commits without them.

Where the idea and the value come from (README, "Turn-taking on unseen speech"): the cuts above were
studied on the held-out and natural sets; 60 ms is the longest look-back that held no finished turn of
the tuning set back (offline, Whisper base, offsets of 30-200 ms tried), and ``fresh/`` was written
before the rule was tried on it.
"""

from __future__ import annotations

from .end_of_turn import Verdict
from .endpointing import is_complete


def lookback_verdict(text: str) -> Verdict:
    """NOT_DONE when the second hearing's words dangle; DONE otherwise (nothing heard is no veto)."""
    return Verdict.NOT_DONE if text.strip() and not is_complete(text) else Verdict.DONE


def words_verdict(words: Verdict, lookback: Verdict | None) -> Verdict:
    """The words' verdict as the end-of-turn strategy sees it, given the second hearing's (``None``: not asked).

    Finished words wait (UNKNOWN) while the second hearing is out, and become UNSURE (wait and see) when it
    dangles; every other verdict stands as it is.
    """
    if words is not Verdict.DONE or lookback is None or lookback is Verdict.DONE:
        return words
    return Verdict.UNKNOWN if lookback is Verdict.UNKNOWN else Verdict.UNSURE
