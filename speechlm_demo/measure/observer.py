"""The one observer: a session's events in, :class:`~.record.TurnRecord` out, the same way for every consumer.

Feed it every event a session emits, in order, with the time it arrived (:meth:`TurnObserver.observe`). Reply
audio is placed on the playback clock of :mod:`.playback` (a chunk plays after what is queued; an
:class:`Interrupt` flushes the queue), and ``first_audio_out`` / ``last_audio_out`` are the first / last
*audible* sample on it, by one threshold (the engine's ``audible_dbfs``, -60 dBFS unless its settings say
otherwise). When a turn ends
(:class:`TurnEnd`), its reply is everything the agent emitted after the turn layer's end of speech and after
the previous turn's end: words, audio and errors. Engines and the turn layer never compute these marks.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..audio import SILENT_DBFS, resample
from ..engines.base import AudioOut, Engine, ErrorEvent, Event, Interrupt, TextOut, TurnEnd
from .playback import PlaybackClock
from .record import TurnRecord

KEEP_S = 120.0  # outputs older than this that no turn claimed are forgotten


@dataclass
class _Output:
    t: float  # arrival
    event: Event
    play_start: float = 0.0
    play_end: float = 0.0
    audible: tuple[float, float] | None = None  # first / last audible instant on the playback clock


class TurnObserver:
    """Thread-safe; one per session. ``on_record`` is called with each record as its turn ends."""

    def __init__(
        self,
        engine_id: str,
        *,
        audible_dbfs: float = SILENT_DBFS,
        clock: Callable[[], float] = time.monotonic,
        keep_audio: bool = False,
        on_record: Callable[[TurnRecord], None] | None = None,
    ) -> None:
        self.engine_id = engine_id
        self.audible_dbfs = audible_dbfs
        self.clock = clock
        self.keep_audio = keep_audio
        self.on_record = on_record
        self.reference_end: float | None = None  # set by a driver that knows the true end of speech
        self.records: list[TurnRecord] = []
        self._outputs: deque[_Output] = deque()
        self._playback = PlaybackClock(audible_dbfs)
        self._last_end = -float("inf")
        self._lock = threading.Lock()

    @classmethod
    def for_engine(cls, engine: Engine, **kwargs: object) -> TurnObserver:
        """An observer with ``engine``'s id and audibility threshold."""
        return cls(engine.id, audible_dbfs=engine.settings.audible_dbfs, **kwargs)  # type: ignore[arg-type]

    def observe(self, event: Event, t: float | None = None) -> TurnRecord | None:
        """Take one event (arrived at ``t``, default now); returns the record if it ended a turn."""
        when = self.clock() if t is None else t
        with self._lock:
            record = self._take(event, when)
        if record is not None and self.on_record is not None:
            self.on_record(record)
        return record

    def _take(self, event: Event, t: float) -> TurnRecord | None:
        if isinstance(event, TurnEnd):
            return self._record(event, t)
        output = _Output(t, event)
        if isinstance(event, AudioOut) and len(event.pcm):
            played = self._playback.place(event.pcm, event.sample_rate, t)
            output.play_start, output.play_end, output.audible = played.start, played.end, played.audible
        elif isinstance(event, Interrupt):
            self._playback.interrupt(t)
            for earlier in self._outputs:
                if earlier.audible is not None and earlier.audible[1] > t:
                    earlier.audible = (earlier.audible[0], t) if earlier.audible[0] < t else None
        self._outputs.append(output)
        while self._outputs and self._outputs[0].t < t - KEEP_S:
            self._outputs.popleft()
        return None

    def _record(self, event: TurnEnd, t: float) -> TurnRecord:
        timeline = event.timeline
        since = max(self._last_end, timeline.marks.get("user_speech_end", -float("inf")))
        mine = [o for o in self._outputs if since <= o.t <= t]
        self._last_end = t
        self._outputs = deque(o for o in self._outputs if o.t > t)
        interrupts = [i for i, o in enumerate(mine) if isinstance(o.event, Interrupt)]
        heard = [o.audible for o in mine if o.audible is not None]
        if heard:
            timeline.mark("first_audio_out", heard[0][0])
            timeline.mark("last_audio_out", heard[-1][1])
        if self.reference_end is not None:
            timeline.mark("reference_speech_end", self.reference_end)
        record = TurnRecord(
            self.engine_id,
            timeline.turn_id,
            timeline,
            user_text=_words(mine, "user"),
            reply_text=_words(mine, "agent"),
            errors=[o.event.message for o in mine if isinstance(o.event, ErrorEvent)],
            arrived=t,
        )
        if self.keep_audio:
            after = mine[interrupts[-1] + 1 :] if interrupts else mine
            record.audio, record.sample_rate = _join([o.event for o in after if isinstance(o.event, AudioOut)])
        self.records.append(record)
        return record


def _words(outputs: list[_Output], role: str) -> str:
    texts = [o.event.text for o in outputs if isinstance(o.event, TextOut) and o.event.role == role and o.event.final]
    return " ".join(text.strip() for text in texts if text.strip())


def _join(chunks: list[AudioOut]) -> tuple[np.ndarray, int]:
    chunks = [c for c in chunks if len(c.pcm)]
    if not chunks:
        return np.zeros(0, np.float32), 0
    rate = chunks[0].sample_rate
    pieces = [c.pcm if c.sample_rate == rate else resample(c.pcm, c.sample_rate, rate) for c in chunks]
    return np.concatenate(pieces).astype(np.float32, copy=False), rate
