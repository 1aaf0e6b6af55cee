"""Fan one recorded user turn out to two engines at once and collect both replies.

Both sides get the same audio (resampled only if an engine takes another rate), fed in real time through
``Engine.open_session`` exactly as the benchmark does (:func:`speechlm_demo.measure.feeding.run_prompt`), each in its
own thread, so the latencies match what a live user would see; each side's result comes from its turn record
(:mod:`speechlm_demo.measure.observer`). The latency both sides are compared on is measured from the same
reference: the recorded turn's end of speech, taken once for both sides (the caller's ``speech_end_s``, e.g. a
prompt's sidecar, else the offline estimate on the audio as given, before any resampling). A full-duplex engine
gets the turn followed by silence and its output is recorded for a bounded window. A side that raises, fails
its turn or runs out of time is reported as ``failed`` / ``timeout`` with a message; the other side is unaffected.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .audio import audible_span, resample
from .engines.base import Engine, ErrorEvent, SessionOptions
from .measure.feeding import LEAD_SILENCE_S, Feed, Prompt, estimate_speech_end, run_prompt
from .timeline import compared_latency

log = logging.getLogger(__name__)

Status = Literal["ok", "failed", "timeout", "fallback"]  # fallback: another engine answered for it
EngineSource = Engine | Callable[[], Engine]
ResultCallback = Callable[[str, "SideResult"], None]
GRACE_S = 1.0  # past its own timeout a side gets this long to hand its result over before it is abandoned


@dataclass
class SideResult:
    """What one engine made of the turn."""

    engine_id: str
    status: Status = "failed"
    message: str = ""
    audio: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))
    sample_rate: int = 16_000
    user_text: str = ""
    reply_text: str = ""
    timeline: dict[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0
    answered_by: str = ""  # the fallback engine that answered instead (status "fallback"), else ""

    @property
    def ok(self) -> bool:
        """The engine answered."""
        return self.status == "ok"

    @property
    def latency_ms(self) -> float | None:
        """The voice-to-voice latency replies are compared on (:func:`~speechlm_demo.timeline.compared_latency`,
        from :data:`~speechlm_demo.timeline.LATENCY_FROM`), if the reply had audio."""
        return compared_latency(self.timeline)[0]


@dataclass
class Comparison:
    """Both sides of one comparison, in the order the engines were given."""

    a: SideResult
    b: SideResult

    @property
    def sides(self) -> dict[str, SideResult]:
        """``{"a": ..., "b": ...}``."""
        return {"a": self.a, "b": self.b}


class _Side(threading.Thread):
    """Runs one engine on the turn; ``result`` is final once ``done``; ``finished`` once it is also handed to
    ``on_result`` (or too late for it): :func:`compare` waits for that, or for ``deadline``."""

    def __init__(self, key: str, source: EngineSource, audio: np.ndarray, rate: int, speech_end_s: float, options: SessionOptions, settings: dict[str, float], changed: threading.Condition, on_result: ResultCallback | None) -> None:
        super().__init__(name=f"compare-{key}", daemon=True)
        self.key, self.source, self.audio, self.rate, self.options = key, source, audio, rate, options
        self.speech_end_s = speech_end_s
        self.settings, self.changed, self.on_result = settings, changed, on_result
        self.started_at = time.monotonic()
        self.deadline = self.started_at + settings["load_timeout_s"]
        self.result = SideResult(engine_id=getattr(source, "id", "?"))
        self.done = self.finished = False

    def run(self) -> None:
        try:
            engine = self.source if isinstance(self.source, Engine) else self.source()
            self.result.engine_id = engine.id
            self.result = _answer(engine, self.audio, self.rate, self.speech_end_s, self.options, self.settings, self._clock_starts)
        except Exception as exc:
            log.exception("comparison side %s failed", self.result.engine_id)
            self.result.status, self.result.message = "failed", f"{self.result.engine_id} failed: {exc}"
        finally:
            self.result.elapsed_s = round(time.monotonic() - self.started_at, 3)
            with self.changed:
                self.done = True
        try:
            if self.on_result is not None and time.monotonic() < self.deadline:
                self.on_result(self.key, self.result)
        finally:  # after on_result: compare() must not wake, see this side busy and wait for its deadline
            with self.changed:
                self.finished = True
                self.changed.notify_all()

    def _clock_starts(self, feed_s: float) -> None:
        """From now on the clock is the turn's, not the loading's."""
        with self.changed:
            self.deadline = time.monotonic() + feed_s + self.settings["timeout_s"] + GRACE_S
            self.changed.notify_all()


def reference_end(audio: np.ndarray, sample_rate: int, speech_end_s: float | None = None) -> float:
    """The turn's reference end of speech in s, the same for every engine: ``speech_end_s`` if given (kept within
    the clip), else the offline estimate on ``audio`` at its own rate."""
    if speech_end_s is None:
        return estimate_speech_end(audio, sample_rate)
    if not np.isfinite(speech_end_s):
        raise ValueError(f"speech_end_s must be a number of seconds, not {speech_end_s!r}")
    return min(max(float(speech_end_s), 0.0), len(audio) / sample_rate)


def _answer(engine: Engine, audio: np.ndarray, sample_rate: int, speech_end_s: float, options: SessionOptions, settings: dict[str, float], starts: Callable[[float], None]) -> SideResult:
    """Feed the turn to ``engine`` in real time, measured from ``speech_end_s`` (s, see :func:`reference_end`);
    ``starts(feed_s)`` is told how long the feeding takes."""
    result = SideResult(engine_id=engine.id, sample_rate=engine.entry.sample_rates.output)
    full = engine.entry.duplex == "full"
    rate = engine.entry.sample_rates.input
    pcm = audio if rate == sample_rate else resample(audio, sample_rate, rate)
    prompt = Prompt(Path("recorded-turn"), pcm, speech_end_s)
    tail = settings["window_s"] if full else settings["tail_s"]
    starts(LEAD_SILENCE_S + len(pcm) / rate + tail)
    feed = run_prompt(engine, prompt, rate, tail, 0.0 if full else settings["timeout_s"], options)
    return _summarise(engine, feed, full, result, settings)


def answer(
    engine: Engine,
    audio: np.ndarray,
    sample_rate: int,
    *,
    speech_end_s: float | None = None,
    options: SessionOptions | None = None,
    timeout_s: float = 60.0,
    tail_s: float = 3.0,
    window_s: float = 8.0,
) -> SideResult:
    """One engine's reply to one recorded turn, as one side of :func:`compare` gets it (never raises). Latency is
    measured from ``speech_end_s`` (s into ``audio``, e.g. a prompt's sidecar) if given, else from the estimate."""
    settings = {"timeout_s": timeout_s, "tail_s": tail_s, "window_s": window_s}
    started = time.monotonic()
    try:
        pcm = np.ascontiguousarray(audio, dtype=np.float32)
        end = reference_end(pcm, sample_rate, speech_end_s)
        result = _answer(engine, pcm, sample_rate, end, options or SessionOptions(), settings, lambda _: None)
    except Exception as exc:
        log.exception("%s failed on the turn", engine.id)
        result = SideResult(engine.id, "failed", f"{engine.id} failed: {exc}")
    result.elapsed_s = round(time.monotonic() - started, 3)
    return result


def _summarise(engine: Engine, feed: Feed, full: bool, result: SideResult, settings: dict[str, float]) -> SideResult:
    """One side's result from its turn record (the answer to the turn; cuts before it do not count)."""
    record = feed.answered
    errors = [e.message for e in feed.events if isinstance(e, ErrorEvent)]
    if record is None:
        result.status = "timeout"
        result.message = errors[-1] if errors else f"{engine.entry.label} gave no reply within {settings['timeout_s']:g} s"
        return result
    result.user_text, result.reply_text = record.user_text, record.reply_text
    if len(record.audio):
        result.audio, result.sample_rate = record.audio, record.sample_rate
        if full:  # the silent output a full-duplex engine makes around its answer is not the answer
            result.audio = _trim_silence(record.audio, record.sample_rate, engine.settings.audible_dbfs)
    result.timeline = record.to_dict()
    if record.status == "ok":
        result.status, result.message = "ok", ""
    elif record.status == "fallback":  # never the engine's own answer (Blind A/B: not playable, not its win)
        result.status, result.answered_by = "fallback", record.answered_by
        reason = record.timeline.extra.get("fallback_reason", "")
        result.message = f"answered by the fallback engine {record.answered_by}" + (f": {reason}" if reason else "")
    else:
        result.status = "failed"
        result.message = record.detail or (record.errors[-1] if record.errors else f"turn {record.status}")
    return result


def _trim_silence(audio: np.ndarray, rate: int, threshold_dbfs: float) -> np.ndarray:
    """From the first to the last audible sample (the observer's definition)."""
    span = audible_span(audio, rate, threshold_dbfs)
    return audio[span[0] : span[1]] if span else audio[:0]


def compare(
    engine_a: EngineSource,
    engine_b: EngineSource,
    audio: np.ndarray,
    sample_rate: int,
    *,
    speech_end_s: float | None = None,
    options: SessionOptions | None = None,
    timeout_s: float = 60.0,
    tail_s: float = 3.0,
    window_s: float = 8.0,
    load_timeout_s: float = 600.0,
    on_result: ResultCallback | None = None,
) -> Comparison:
    """Run ``audio`` (mono float32) through both engines concurrently; returns once both are done or late.

    An engine may be given as a zero-argument callable (e.g. ``functools.partial(registry.get, id)``):
    it is then loaded inside its side, so a load failure fails only that side. ``timeout_s`` counts from
    the end of the fed audio (lead silence + turn + ``tail_s`` of silence; ``window_s`` for full-duplex
    engines, whose output is recorded for that long after the turn). ``on_result("a" | "b", result)`` is
    called from a side's thread as soon as that side is done in time (e.g. to show it before the other).
    Both sides are measured from one reference end of speech (:func:`reference_end` of ``speech_end_s``).
    """
    settings = {"timeout_s": timeout_s, "tail_s": tail_s, "window_s": window_s, "load_timeout_s": load_timeout_s}
    changed = threading.Condition()
    pcm = np.ascontiguousarray(audio, dtype=np.float32)
    end = reference_end(pcm, sample_rate, speech_end_s)
    sides = [
        _Side(key, source, pcm.copy(), sample_rate, end, options or SessionOptions(), settings, changed, on_result)
        for key, source in (("a", engine_a), ("b", engine_b))
    ]
    for side in sides:
        side.start()
    with changed:
        while True:
            running = [s for s in sides if not s.finished]
            now = time.monotonic()
            if not running or all(now >= s.deadline for s in running):
                break
            changed.wait(min(s.deadline for s in running if now < s.deadline) - now)
    return Comparison(*(_final(side) for side in sides))


def as_they_finish(run: Callable[[ResultCallback], Comparison]) -> Iterator[tuple[str, SideResult] | Comparison]:
    """Run ``run(on_result)`` (e.g. ``lambda cb: compare(..., on_result=cb)``) in a thread; yield each side's
    ``(side, result)`` as it is done, then the :class:`Comparison`. An exception of ``run`` is re-raised here."""
    events: queue.Queue[tuple[str, SideResult] | Comparison | BaseException] = queue.Queue()

    def work() -> None:
        try:
            events.put(run(lambda side, result: events.put((side, result))))
        except BaseException as exc:  # handed to the consumer
            events.put(exc)

    threading.Thread(target=work, name="comparison", daemon=True).start()
    while True:
        item = events.get()
        if isinstance(item, BaseException):
            raise item
        yield item
        if isinstance(item, Comparison):
            return


def _final(side: _Side) -> SideResult:
    """The side's result, or a timeout if it is not done (its thread is abandoned, never joined)."""
    if side.done:
        return side.result
    engine_id = side.result.engine_id
    log.warning("comparison side %s timed out; abandoning its thread", engine_id)
    elapsed = round(time.monotonic() - side.started_at, 3)
    return SideResult(engine_id, "timeout", f"{engine_id} did not finish in time", sample_rate=side.result.sample_rate, elapsed_s=elapsed)
