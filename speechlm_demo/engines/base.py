"""The one streaming seam every engine plugs into.

An :class:`Engine` is built from its catalogue entry, loads once (weights or a server connection) and
opens any number of :class:`EngineSession` objects. A session takes mono float32 frames at the engine's
input rate via :meth:`EngineSession.push_audio` and reports what happens through the ``emit`` callback
it was opened with: :class:`AudioOut`, :class:`TextOut`, :class:`Mark`, :class:`ErrorEvent`,
:class:`Interrupt` and, once a turn is complete, :class:`TurnEnd` with its timeline.

This module is the protocol only: it imports nothing of the turn layer. Half-duplex engines subclass
:class:`speechlm_demo.turntaking.half_duplex.HalfDuplexEngine` and implement only ``respond`` (one whole
user turn in, events out); full-duplex engines subclass
:class:`speechlm_demo.turntaking.full_duplex.FullDuplexEngine`. Each engine class declares its typed
:class:`EngineSettings` (``Settings``), validated against the catalogue entry's ``defaults`` when the
catalogue loads.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..input_guard import InputGuard
from ..timeline import Timeline

if TYPE_CHECKING:
    from ..catalog import EngineEntry


@dataclass(frozen=True)
class AudioOut:
    """A chunk of reply audio: mono float32 in [-1, 1]."""

    pcm: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        """Length of the chunk in seconds."""
        return len(self.pcm) / self.sample_rate


@dataclass(frozen=True)
class TextOut:
    """Text for the transcript: what the user said (ASR) or what the agent says.

    ``confidence`` (user words only, when the recogniser reports one): how sure it is of the words, in
    [0, 1] (Whisper: the exponent of the mean token log-probability). The turn layer does not let words it
    is unsure of end a turn early (``min_transcript_confidence``).
    """

    text: str
    role: Literal["user", "agent"] = "agent"
    final: bool = True
    confidence: float | None = None


@dataclass(frozen=True)
class Mark:
    """A timeline point (see :data:`speechlm_demo.timeline.STANDARD_MARKS`)."""

    name: str
    t: float = field(default_factory=time.monotonic)


@dataclass(frozen=True)
class ErrorEvent:
    """Something went wrong; ``fatal`` means the session cannot continue."""

    message: str
    fatal: bool = False


@dataclass(frozen=True)
class Interrupt:
    """The user barged in: drop any reply audio not yet played."""

    turn_id: int


@dataclass(frozen=True)
class TurnEnd:
    """A turn is over (answered, failed or interrupted); its timeline is complete."""

    timeline: Timeline


Event = Union[AudioOut, TextOut, Mark, ErrorEvent, Interrupt, TurnEnd]
Emit = Callable[[Event], None]
Progress = Callable[[float, str], None]


@dataclass
class SessionOptions:
    """Per-session settings a user can change."""

    system_prompt: str | None = None
    voice: str | None = None
    temperature: float | None = None
    seed: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EngineError(RuntimeError):
    """An engine failed in a way the user should read about."""


class EngineSettings(BaseModel):
    """An engine class's settings, read from its catalogue entry's ``defaults``; unknown keys are refused.

    Subclasses declare typed fields with their defaults; the engine reads ``self.settings.<field>``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    audible_dbfs: float = Field(
        -60.0, le=0.0, description="reply audio louder than this is heard (first_audio_out / last_audio_out)"
    )


def describe_settings_error(exc: ValidationError) -> list[str]:
    """One ``field defaults.NAME: problem`` per error of a settings validation."""
    return [f"field defaults.{'.'.join(str(p) for p in e['loc']) or '(all)'}: {e['msg']}" for e in exc.errors()]


class EngineSession(ABC):
    """One conversation with an engine. Not thread-safe: one caller pushes audio."""

    def __init__(self, engine: Engine, options: SessionOptions, emit: Emit) -> None:
        self.engine = engine
        self.options = options
        self.emit = emit
        self.input_guard = InputGuard(
            self.input_sample_rate, lambda message: self.emit(ErrorEvent(message)), self.clean_sample_rate
        )

    @property
    def input_sample_rate(self) -> int:
        """The rate :meth:`push_audio` expects."""
        return self.engine.entry.sample_rates.input

    @property
    def clean_sample_rate(self) -> int:
        """The rate :meth:`_push` receives (the guard resamples to it, once): :attr:`input_sample_rate` unless
        the session works at another rate."""
        return self.input_sample_rate

    def push_audio(self, pcm: object, sample_rate: int | None = None) -> None:
        """Feed samples of any length: mono or (channels, samples) in either layout, any numeric type, at
        ``sample_rate`` (default :attr:`input_sample_rate`). Cleaned by :class:`InputGuard`: unusable input
        is reported once (``ErrorEvent``) and skipped, the session goes on."""
        clean = self.input_guard.clean(pcm, sample_rate)
        if clean is not None and len(clean):
            self._push(clean)

    @abstractmethod
    def _push(self, pcm: np.ndarray) -> None:
        """Take clean audio: finite mono float32 in [-1, 1] at :attr:`clean_sample_rate`."""

    def flush(self) -> None:
        """The input has ended (a file fed completely): finish any turn in progress."""

    def reply_pending(self) -> bool:
        """Whether events may still come for the audio pushed so far (a turn heard, its reply not over).
        Sessions that cannot tell say True; callers then wait for their own timeout."""
        return True

    @abstractmethod
    def close(self) -> None:
        """Stop all work of this session and release what it holds."""


class Engine(ABC):
    """An engine built from a catalogue entry, placed on ``device`` (``cpu``, ``cuda:0``, ...)."""

    Settings: ClassVar[type[EngineSettings]] = EngineSettings

    def __init__(self, entry: EngineEntry, device: str = "cpu") -> None:
        self.entry = entry
        self.device = device
        self.loaded = False
        try:
            self.settings = self.Settings.model_validate(entry.defaults)
        except ValidationError as exc:
            raise EngineError(f"catalogue entry {entry.id!r}: " + "; ".join(describe_settings_error(exc))) from None

    @property
    def id(self) -> str:
        """The catalogue id."""
        return self.entry.id

    def settings_for(self, options: SessionOptions) -> Any:
        """:attr:`settings` with the session's ``options.extra`` overriding the fields it names (validated)."""
        known = {k: v for k, v in options.extra.items() if k in type(self.settings).model_fields}
        if not known:
            return self.settings
        return type(self.settings).model_validate({**self.settings.model_dump(exclude_unset=True), **known})

    def load(self, progress: Progress | None = None) -> None:
        """Load weights or connect to a server. Idempotent."""
        if not self.loaded:
            self._load(progress or (lambda fraction, message: None))
            self.loaded = True

    def _load(self, progress: Progress) -> None:
        """Subclasses load here; the default has nothing to load."""

    @abstractmethod
    def open_session(self, options: SessionOptions, emit: Emit) -> EngineSession:
        """Start a conversation."""

    def close(self) -> None:
        """Release weights / connections."""


@dataclass
class UserTurn:
    """One complete user turn handed to a half-duplex engine."""

    turn_id: int
    audio: np.ndarray
    sample_rate: int
    timeline: Timeline
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def duration_s(self) -> float:
        """Length of the turn's audio in seconds."""
        return len(self.audio) / self.sample_rate

