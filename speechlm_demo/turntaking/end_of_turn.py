"""End-of-turn strategies: may a speculative reply be played now, must it wait, or be dropped?

The turn detector finds pauses; a reply starts speculatively at each. What ends the user's turn early
(before ``end_silence_ms``, which always does) is one of these strategies, chosen per engine by the
catalogue's ``endpointing`` setting:

* ``silence`` - nothing: only the long silence ends the turn (engines that report no transcript);
* ``transcript`` - the words heard read as a finished question or request (:mod:`.endpointing`); a finished
  statement that asks nothing ("I need some advice.") waits for more words or the long silence, as do
  words the recogniser was unsure of and words whose second hearing without the turn's last moments
  dangles (``lookback_ms``, :mod:`.lookback`: a misheard "think about" read as "think I'm out?");
* ``smart-turn`` - the audio sounds finished (Smart Turn v3, :mod:`.smart_turn`), no transcript needed;
* ``combined`` - the audio must sound finished AND the words must not dangle: the audio holds a reply
  whose words read finished ("I have a question about space." said as a lead-in) and the words drop a
  reply whose audio sounds finished (synthetic voices fall in pitch at every phrase end).

A strategy sees only :class:`Evidence` (what is known about the pause right now) and answers with an
:class:`Action`; the reply's state machine does the rest (see :mod:`.speculative_reply`). Each
strategy is a few lines and has no state, so a new rule is a new class in :data:`STRATEGIES`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Protocol


class Verdict(Enum):
    """One source's opinion on whether the user has finished."""

    UNKNOWN = "unknown"  # not asked, or the answer is not in yet
    DONE = "done"
    NOT_DONE = "not_done"
    STATEMENT = "statement"  # finished words that ask nothing: a lead-in, or the whole turn; wait and see
    UNSURE = "unsure"  # the words read finished, but the recogniser was unsure of them: wait and see


class Action(Enum):
    """What the reply should do now."""

    WAIT = "wait"  # keep the reply held back; ask again when something changes
    COMMIT = "commit"  # the turn is over: play the reply
    DROP = "drop"  # the user is mid-thought: drop the reply (a long silence starts afresh)


@dataclass(frozen=True)
class Evidence:
    """What is known about the pause a speculative reply started at."""

    confirmed: bool  # the VAD heard the pause (False while the reply started at a likely pause)
    silence_ms: float  # silence so far since the user's voice ended (or since a blip heard in the pause)
    blip_pending: bool  # voice is being heard in the pause, neither a resumption nor a blip yet
    min_commit_silence_ms: float  # the floor under any early commit
    transcript: Verdict = Verdict.UNKNOWN
    audio: Verdict = Verdict.UNKNOWN
    audio_probability: float | None = None  # Smart Turn's probability that the turn is finished

    @property
    def quiet_enough(self) -> bool:
        """The pause is confirmed, free of voice and at least the floor long."""
        return self.confirmed and not self.blip_pending and self.silence_ms >= self.min_commit_silence_ms


class EndOfTurnStrategy(Protocol):
    """An early end-of-turn rule."""

    name: ClassVar[str]
    uses_audio: ClassVar[bool]  # whether the session must ask Smart Turn about each pause
    uses_words: ClassVar[bool]  # whether it reads the user's words (the engine's, or the turn layer's own)

    def decide(self, evidence: Evidence) -> Action:
        """WAIT, COMMIT or DROP given what is known now."""
        ...


class SilenceOnly:
    """Only ``end_silence_ms`` of silence ends the turn (the session handles it)."""

    name: ClassVar[str] = "silence"
    uses_audio: ClassVar[bool] = False
    uses_words: ClassVar[bool] = False

    def decide(self, evidence: Evidence) -> Action:
        """Always wait."""
        return Action.WAIT


class TranscriptRule:
    """Commit when the words read as a finished question or request and the pause is quiet enough; drop when
    they dangle; a finished statement waits (for more words, or for ``end_silence_ms``)."""

    name: ClassVar[str] = "transcript"
    uses_audio: ClassVar[bool] = False
    uses_words: ClassVar[bool] = True

    def decide(self, evidence: Evidence) -> Action:
        """Follow the transcript's verdict."""
        if evidence.transcript is Verdict.NOT_DONE:
            return Action.DROP
        if evidence.transcript is Verdict.DONE and evidence.quiet_enough:
            return Action.COMMIT
        return Action.WAIT


class SmartTurnRule:
    """Commit when the audio sounds finished; hold (never drop) while it does not."""

    name: ClassVar[str] = "smart-turn"
    uses_audio: ClassVar[bool] = True
    uses_words: ClassVar[bool] = False

    def decide(self, evidence: Evidence) -> Action:
        """Follow the audio's verdict."""
        if evidence.audio is Verdict.DONE and evidence.quiet_enough:
            return Action.COMMIT
        return Action.WAIT


class CombinedRule:
    """Words that dangle drop the reply; audio that sounds unfinished holds it; both finished commit it.

    ``trust_audio_above`` (catalogue ``smart_turn_alone_above``, 1.0 = never): audio this sure of itself
    commits without waiting for the transcript (the decision then no longer waits for the ASR).
    """

    name: ClassVar[str] = "combined"
    uses_audio: ClassVar[bool] = True
    uses_words: ClassVar[bool] = True

    def __init__(self, trust_audio_above: float = 1.0) -> None:
        self.trust_audio_above = trust_audio_above

    def decide(self, evidence: Evidence) -> Action:
        """Veto from either source; commit on agreement (or on very sure audio)."""
        if evidence.transcript is Verdict.NOT_DONE:
            return Action.DROP
        if evidence.audio is not Verdict.DONE or not evidence.quiet_enough:
            return Action.WAIT
        sure = evidence.audio_probability is not None and evidence.audio_probability >= self.trust_audio_above
        return Action.COMMIT if evidence.transcript is Verdict.DONE or sure else Action.WAIT


STRATEGIES: dict[str, type[EndOfTurnStrategy]] = {
    rule.name: rule for rule in (SilenceOnly, TranscriptRule, SmartTurnRule, CombinedRule)
}


def strategy_for(name: str, trust_audio_above: float = 1.0) -> EndOfTurnStrategy:
    """The strategy a catalogue ``endpointing`` value names (ValueError listing the choices otherwise)."""
    if name not in STRATEGIES:
        raise ValueError(f"endpointing must be one of {', '.join(STRATEGIES)}, not {name!r}")
    return CombinedRule(trust_audio_above) if name == CombinedRule.name else STRATEGIES[name]()
