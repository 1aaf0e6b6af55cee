"""Turn detection: a stream of samples in, "speech started / paused / resumed / turn ended" out.

A short pause (``pause_ms``) is reported at once so replies can start speculatively; with
``early_pause_db`` set, even earlier: the moment the last ``early_quiet_ms`` of a window the VAD still calls
voiced fall that far below the turn's loudest window (a VAD lags the end of speech by a window or two;
the level does not). Such a *likely* pause is withdrawn as soon as any sound comes back (a stop
consonant, not the end; a soft last consonant that the turn's audio must not lose), and confirmed by
the VAD's own pause. The turn is only
over after ``end_silence_ms`` of silence, or earlier when the session's completeness judgement
accepts the words heard at the pause (see :mod:`speechlm_demo.turntaking.half_duplex`). A blip of voice shorter
than ``resume_ms`` inside a pause is ignored; voice broken by gaps shorter than ``resume_ms`` adds up, so
speech with short gaps between its words counts as a resumption. Turns longer than ``max_turn_s`` are cut.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np
from pydantic import Field

from ..audio import rms_dbfs
from ..engines.base import EngineSettings
from .voice_activity import VoiceActivityModel

REVIVAL_DB = 10.0  # after a likely pause, a window this much louder than the quiet that raised it withdraws it
AFTER_VOICE_S = 0.1  # a turn's audio goes on this long after its voice ends (if heard yet): a soft last sound


class TurnSettings(EngineSettings):
    """Knobs of the detector; engine settings classes inherit them, so catalogue ``defaults`` may set them."""

    threshold: float = Field(0.5, ge=0.0, le=1.0, description="VAD speech probability that counts as voice")
    min_speech_ms: float = Field(120.0, ge=0.0, description="voice needed to start a turn")
    pause_ms: float = Field(160.0, ge=0.0, description="silence that is a pause (a reply starts speculatively)")
    resume_ms: float = Field(90.0, ge=0.0, description="voice in a pause that is a resumption, not a blip")
    end_silence_ms: float = Field(400.0, gt=0.0, description="silence that ends the turn")
    early_pause_db: float = Field(0.0, ge=0.0, description="level drop under the turn's peak that is a likely pause (0: off)")
    early_quiet_ms: float = Field(16.0, gt=0.0, description="tail of a window whose level raises a likely pause")
    min_commit_silence_ms: float = Field(0.0, ge=0.0, description="silence needed before a transcript may commit")
    pre_roll_ms: float = Field(300.0, ge=0.0, description="audio kept before the start of speech")
    max_turn_s: float = Field(30.0, gt=0.0, description="longest turn; longer ones are cut")
    reply_timeout_s: float = Field(30.0, gt=0.0, description="a reply not finished by then is abandoned")


@dataclass(frozen=True)
class SpeechStarted:
    """Speech began at sample ``start``."""

    start: int


@dataclass(frozen=True)
class _TurnSoFar:
    """The turn heard so far: samples [start, end) with its audio (pre-roll included, up to sample ``audio_end``),
    decided at ``decided``."""

    start: int
    end: int
    decided: int
    audio: np.ndarray
    audio_end: int

    def trimmed(self, rate: int, trim_ms: float) -> np.ndarray:
        """The turn's audio up to ``trim_ms`` before its voice ended (the pre-roll kept; empty if nothing is left)."""
        keep = len(self.audio) - (self.audio_end - self.end) - int(trim_ms * rate / 1000)
        return self.audio[: max(0, keep)]


@dataclass(frozen=True)
class PauseDetected(_TurnSoFar):
    """Silence of ``pause_ms`` after speech: the turn so far may be complete."""


@dataclass(frozen=True)
class PauseLikely(_TurnSoFar):
    """The level just fell ``early_pause_db`` below the turn's peak: the turn so far may be complete, before
    the VAD can tell. Withdrawn by :class:`PauseUnlikely`, confirmed by :class:`PauseDetected`."""


@dataclass(frozen=True)
class PauseUnlikely:
    """The level came back before the VAD heard a pause: the last :class:`PauseLikely` was a dip in a word."""

    at: int


@dataclass(frozen=True)
class SpeechResumed:
    """The user went on speaking after a :class:`PauseDetected`."""

    at: int


@dataclass(frozen=True)
class BlipIgnored:
    """Voice heard inside a pause stayed too short to be a resumption; the pause goes on."""

    at: int


@dataclass(frozen=True)
class TurnClosed(_TurnSoFar):
    """The detector closed the user's turn: silence, or ``truncated`` at ``max_turn_s`` (not the seam's
    :class:`~speechlm_demo.engines.base.TurnEnd`, which reports a whole answered turn)."""

    truncated: bool = False


_Turn = TypeVar("_Turn", bound=_TurnSoFar)
Decision = SpeechStarted | PauseLikely | PauseUnlikely | PauseDetected | SpeechResumed | BlipIgnored | TurnClosed


class TurnDetector:
    """Window-by-window speech / silence state machine with a hang-over."""

    def __init__(self, vad: VoiceActivityModel, settings: TurnSettings) -> None:
        self.vad = vad
        self.settings = settings
        self.rate = vad.sample_rate
        self.samples_seen = 0
        self._pending = np.zeros(0, dtype=np.float32)
        self._history = _History()  # samples since (turn start - pre-roll), one growing buffer per turn
        self._in_turn = False
        self._speech_run = 0
        self._turn_start = 0
        self._last_voiced_end = 0
        self._paused = False
        self._resume_run = 0
        self._resume_last = 0  # end of the last voiced window inside a pause
        self._peak_db = -120.0  # the turn's loudest voiced window
        self._likely = False  # a PauseLikely stands (neither withdrawn nor confirmed yet)
        self._likely_db = -120.0  # the level of the quiet tail that raised it

    def _ms(self, samples: int) -> float:
        return samples * 1000.0 / self.rate

    def push(self, pcm: np.ndarray) -> Iterator[Decision]:
        """Feed samples at the VAD's rate; yield decisions as they are made."""
        self._pending = np.concatenate([self._pending, pcm.astype(np.float32, copy=False)])
        window = self.vad.window
        while len(self._pending) >= window:
            chunk, self._pending = self._pending[:window], self._pending[window:]
            yield from self._step(chunk)

    @property
    def in_turn(self) -> bool:
        """Speech has started and the turn has not ended yet."""
        return self._in_turn

    def quiet_ms(self, voice_end: int) -> float:
        """Milliseconds of quiet heard since sample ``voice_end`` (where the caller heard the user's voice end), or
        since the last voice heard in a pause if that ended later (a blip too short to resume the turn: it does
        not move the turn's end of speech, but the user was not silent then)."""
        return self._ms(self.samples_seen - max(voice_end, self._resume_last))

    @property
    def blip_pending(self) -> bool:
        """Voice was heard in the current pause that is neither a resumption nor an ignored blip yet."""
        return self._paused and self._resume_run > 0

    def _step(self, chunk: np.ndarray) -> Iterator[Decision]:
        self.samples_seen += len(chunk)
        self._remember(chunk)
        voiced = self.vad.speech_probability(chunk) >= self.settings.threshold
        if not self._in_turn:
            self._speech_run = self._speech_run + len(chunk) if voiced else 0
            if self._ms(self._speech_run) >= self.settings.min_speech_ms:
                self._in_turn = True
                self._turn_start = self.samples_seen - self._speech_run
                self._last_voiced_end = self.samples_seen
                yield SpeechStarted(self._turn_start)
            return
        if voiced and self._paused:
            self._resume_run += len(chunk)
            self._resume_last = self.samples_seen
            if self._ms(self._resume_run) >= self.settings.resume_ms:
                self._paused = False
                self._last_voiced_end = self.samples_seen
                yield SpeechResumed(self.samples_seen - self._resume_run)
        elif voiced:
            self._last_voiced_end = self.samples_seen
            yield from self._level_check(chunk)
        elif self._ms(self.samples_seen - self._resume_last) >= self.settings.resume_ms and self._resume_run:
            self._resume_run = 0
            if self._paused:
                yield BlipIgnored(self.samples_seen)
        silence_ms = self._ms(self.samples_seen - self._last_voiced_end)
        too_long = self._ms(self.samples_seen - self._turn_start) >= self.settings.max_turn_s * 1000
        if silence_ms >= self.settings.end_silence_ms or too_long:
            yield self._end_turn(truncated=too_long and silence_ms < self.settings.end_silence_ms)
        elif not self._paused and silence_ms >= self.settings.pause_ms:
            self._paused = True
            self._likely = False
            self._resume_run = 0
            yield self._so_far(PauseDetected, self._last_voiced_end)

    def _level_check(self, chunk: np.ndarray) -> Iterator[Decision]:
        """Raise or withdraw a likely pause from the level of a voiced window's last ``early_quiet_ms``."""
        if not self.settings.early_pause_db:
            return
        level = rms_dbfs(chunk)
        self._peak_db = max(self._peak_db, level)
        quiet = self._peak_db - self.settings.early_pause_db
        if self._likely:
            if level >= min(quiet, self._likely_db + REVIVAL_DB):
                self._likely = False
                yield PauseUnlikely(self.samples_seen)
            return
        tail = chunk[-max(1, int(self.settings.early_quiet_ms * self.rate / 1000)) :]
        self._likely_db = rms_dbfs(tail)
        if self._likely_db < quiet:
            self._likely = True
            yield self._so_far(PauseLikely, self.samples_seen - len(tail))

    def _remember(self, chunk: np.ndarray) -> None:
        self._history.append(chunk)
        if not self._in_turn:
            self._history.keep_last(int(self.settings.pre_roll_ms * self.rate / 1000) + self.vad.window * 8)

    def _so_far(self, kind: type[_Turn], end: int, **more: Any) -> _Turn:
        """A ``kind`` decision on the turn so far, its voice ending at ``end``, with its audio."""
        pre_roll = int(self.settings.pre_roll_ms * self.rate / 1000)
        first = max(self._history.start, self._turn_start - pre_roll)
        last = min(self.samples_seen, self._last_voiced_end + int(AFTER_VOICE_S * self.rate))
        return kind(self._turn_start, end, self.samples_seen, self._history.between(first, last), last, **more)

    def _end_turn(self, truncated: bool) -> TurnClosed:
        ended = self._so_far(TurnClosed, self._last_voiced_end, truncated=truncated)
        self._in_turn = False
        self._paused = False
        self._likely = False
        self._peak_db = -120.0
        self._speech_run = 0
        self._history = _History(self.samples_seen)  # a new buffer: the audio handed over stays as it was
        return ended

    def finish(self) -> TurnClosed | None:
        """End of input: close the turn in progress, if any."""
        return self._end_turn(truncated=False) if self._in_turn else None


class _History:
    """The samples of one turn (and its pre-roll) in one buffer that grows by doubling, so a turn's audio is
    a read-only view, never a join of its windows. Only the front is dropped, and only before the turn starts
    (before any view is handed out); a new turn gets a new buffer, so views handed out never change."""

    def __init__(self, start: int = 0) -> None:
        self.start = start  # stream index of the first sample held
        self._buffer = np.zeros(0, dtype=np.float32)
        self._offset = 0  # where that sample is in the buffer
        self._length = 0

    def append(self, chunk: np.ndarray) -> None:
        """Add samples at the end."""
        end = self._offset + self._length
        if end + len(chunk) > len(self._buffer):
            grown = np.zeros(max(2 * (self._length + len(chunk)), 4_096), dtype=np.float32)
            grown[: self._length] = self._buffer[self._offset : end]
            self._buffer, self._offset, end = grown, 0, self._length
        self._buffer[end : end + len(chunk)] = chunk
        self._length += len(chunk)

    def keep_last(self, count: int) -> None:
        """Drop all but the last ``count`` samples (while no turn is under way)."""
        drop = max(0, self._length - count)
        self._offset += drop
        self._length -= drop
        self.start += drop

    def between(self, first: int, last: int) -> np.ndarray:
        """Samples [first, last) of the stream (clipped to what is held), as a read-only view."""
        lo = self._offset + min(max(0, first - self.start), self._length)
        hi = self._offset + min(max(0, last - self.start), self._length)
        view = self._buffer[lo:max(lo, hi)]
        view.flags.writeable = False
        return view
