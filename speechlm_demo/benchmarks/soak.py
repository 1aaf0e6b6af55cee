"""Soak benchmark: long monologues and questions in a row through one session, watching threads, memory, CPU.

``python -m speechlm_demo bench-soak --engine cascade`` opens one session (as one WebRTC user does) and,
``rounds`` times, feeds in real time a monologue of ``monologue_s`` seconds (espeak-ng sentences with
short gaps between them, each gap a pause that may start a speculative reply), ``gap_s`` of silence, then
one question, then silence until the question is answered or ``answer_timeout_s`` passes. Twice a second
it samples the process's threads and resident memory; it also counts the CPU seconds the process burns
in the ``settle_s`` of silence after each answer (near 0 when no work is left behind). The figures that
matter are relative: peak threads, memory growth from round to round, reply rate.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..cli_types import non_negative_float, output_file, positive_float, positive_int
from ..engines.base import Engine, ErrorEvent, Event, SessionOptions, TurnEnd
from ..measure.observer import TurnObserver
from ..measure.record import TurnRecord
from ..output_paths import write_json_report
from .prompt_sets import COMPLETE, speak

log = logging.getLogger(__name__)

FRAME_S = 0.02
SAMPLE_EVERY_S = 0.5
MONOLOGUE = (
    "I want to tell you about the trip I took last summer.",
    "We left early in the morning, before the sun was up.",
    "The road wound through the hills for hours.",
    "My sister drove, and I looked after the map.",
    "We stopped at a small town for breakfast.",
    "The bakery there sold the best bread I have ever eaten.",
    "After that we followed the river towards the coast.",
    "The water was green and very clear.",
    "In the afternoon we reached a village by the sea.",
    "There were fishing boats painted in bright colours.",
    "We rented a room above a cafe on the harbour.",
    "Every evening the fishermen came back with their catch.",
    "On the second day we walked along the cliffs.",
    "The wind was strong and the gulls were loud.",
    "We found a hidden beach at the bottom of a long path.",
    "Nobody else was there, so we stayed until dark.",
    "On the third day it rained without stopping.",
    "We spent the day in a museum about old ships.",
    "I learned that the harbour is more than five hundred years old.",
    "In the evening the rain stopped and the sky turned orange.",
    "The next morning we drove home along another road.",
    "It took longer, but the mountains were worth it.",
    "We sang along to the radio most of the way.",
    "I would like to go back there one day.",
)
GAPS_S = (0.25, 0.4, 0.3, 0.5, 0.35)  # between sentences: pauses, but shorter than a turn's end


def process_stats() -> tuple[int, float]:
    """This process's (native threads, resident memory in MB)."""
    import psutil

    process = psutil.Process()
    return process.num_threads(), process.memory_info().rss / 2**20


def cpu_seconds() -> float:
    """CPU time (user + system) this process has used so far."""
    times = os.times()
    return times.user + times.system


class Sampler(threading.Thread):
    """Samples threads and RSS every :data:`SAMPLE_EVERY_S`; :meth:`window` gives the peaks since a mark."""

    def __init__(self) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.samples: list[tuple[float, int, float]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def run(self) -> None:
        while not self._stop.is_set():
            self.take()
            self._stop.wait(SAMPLE_EVERY_S)

    def take(self) -> tuple[int, float]:
        """One sample now."""
        threads, rss = process_stats()
        with self._lock:
            self.samples.append((time.monotonic(), threads, rss))
        return threads, rss

    def window(self, since: float) -> tuple[int, float]:
        """Peak threads and peak RSS (MB) among the samples taken since ``since``."""
        with self._lock:
            recent = [s for s in self.samples if s[0] >= since] or self.samples[-1:]
        return max(s[1] for s in recent), max(s[2] for s in recent)

    def stop(self) -> None:
        """End sampling."""
        self._stop.set()


@dataclass
class Round:
    """What one monologue and its question produced."""

    index: int
    answered: bool
    reply_s: float | None  # from the question's end of speech to the answer's first audio (relative use only)
    monologue_turns: int  # turns the session ended while the monologue went on (commits, interrupts, cuts)
    threads_before: int
    threads_peak: int
    threads_after: int
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    cpu_after_answer_s: float  # CPU seconds burned in the quiet settle window after the answer
    user_text: str = ""
    reply_text: str = ""
    errors: list[str] = field(default_factory=list)


def build_monologue(seconds: float, rate: int, say: Callable[[str], np.ndarray] = speak) -> np.ndarray:
    """Sentences of :data:`MONOLOGUE` (repeated as needed) with short gaps, until ``seconds`` are spoken."""
    parts: list[np.ndarray] = []
    total = 0
    index = 0
    while total < seconds * rate:
        sentence = say(MONOLOGUE[index % len(MONOLOGUE)])
        gap = np.zeros(int(GAPS_S[index % len(GAPS_S)] * rate), np.float32)
        parts += [sentence, gap]
        total += len(sentence) + len(gap)
        index += 1
    return np.concatenate(parts)


class _Feeder:
    """Feeds one session in real time (20 ms frames) and keeps every event with its arrival time."""

    def __init__(self, engine: Engine) -> None:
        self.rate = engine.entry.sample_rates.input
        self.events: list[tuple[float, Event]] = []
        self.changed = threading.Condition()
        self.observer = TurnObserver.for_engine(engine)
        self.session = engine.open_session(SessionOptions(), self._collect)
        self._next = time.monotonic()

    def _collect(self, event: Event) -> None:
        now = time.monotonic()
        self.observer.observe(event, now)
        with self.changed:
            self.events.append((now, event))
            self.changed.notify_all()

    def feed(self, audio: np.ndarray) -> None:
        """Push ``audio`` in real time."""
        frame = int(self.rate * FRAME_S)
        for start in range(0, len(audio), frame):
            self._next += FRAME_S
            time.sleep(max(0.0, self._next - time.monotonic()))
            self.session.push_audio(audio[start : start + frame])

    def silence_until(self, done: Callable[[], bool], limit_s: float) -> None:
        """Push silence in real time until ``done()`` or ``limit_s`` passed."""
        silence = np.zeros(int(self.rate * FRAME_S), np.float32)
        deadline = time.monotonic() + limit_s
        self._next = max(self._next, time.monotonic())
        while time.monotonic() < deadline and not done():
            self.feed(silence)

    def turn_ends(self, since: float) -> list[TurnEnd]:
        """Turn ends that arrived since ``since``."""
        with self.changed:
            return [e for t, e in self.events if t >= since and isinstance(e, TurnEnd)]

    def answer_to(self, asked: float) -> TurnRecord | None:
        """The first turn whose speech ended after ``asked`` and was answered with audible audio."""
        for record in list(self.observer.records):
            if record.timeline.marks.get("user_speech_end", 0.0) >= asked and record.status == "ok" and "first_audio_out" in record.timeline.marks:
                return record
        return None

    def close(self) -> None:
        """Close the session."""
        self.session.close()


def soak(
    engine: Engine,
    *,
    rounds: int = 3,
    monologue_s: float = 90.0,
    gap_s: float = 3.0,
    answer_timeout_s: float = 30.0,
    settle_s: float = 10.0,
    say: Callable[[str], np.ndarray] = speak,
    progress: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Run the soak on a loaded ``engine``; returns the report (rounds, summary, settings)."""
    feeder = _Feeder(engine)
    rate = feeder.rate
    monologue = build_monologue(monologue_s, rate, say)
    questions = [say(text) for text in COMPLETE]
    sampler = Sampler()
    sampler.start()
    results: list[Round] = []
    try:
        for index in range(rounds):
            started = time.monotonic()
            threads_before, rss_before = sampler.take()  # in the round's window: its peak is never below its start
            feeder.feed(monologue)
            feeder.feed(np.zeros(int(gap_s * rate), np.float32))
            asked = time.monotonic()
            monologue_turns = len(feeder.turn_ends(started))
            question = questions[index % len(questions)]
            feeder.feed(question)
            question_end = time.monotonic()

            feeder.silence_until(lambda asked=asked: feeder.answer_to(asked) is not None, answer_timeout_s)
            reply = feeder.answer_to(asked)
            cpu_start = cpu_seconds()
            feeder.silence_until(lambda: False, settle_s)
            cpu_after = cpu_seconds() - cpu_start
            threads_peak, rss_peak = sampler.window(started)
            threads_after, rss_after = sampler.take()
            errors = [e.message for t, e in feeder.events if t >= started and isinstance(e, ErrorEvent)]
            result = Round(
                index=index + 1,
                answered=reply is not None,
                reply_s=round(reply.timeline.marks["first_audio_out"] - question_end, 2) if reply is not None else None,
                monologue_turns=monologue_turns,
                threads_before=threads_before,
                threads_peak=threads_peak,
                threads_after=threads_after,
                rss_before_mb=round(rss_before, 1),
                rss_peak_mb=round(rss_peak, 1),
                rss_after_mb=round(rss_after, 1),
                cpu_after_answer_s=round(cpu_after, 2),
                user_text=reply.user_text if reply is not None else "",
                reply_text=reply.reply_text if reply is not None else "",
                errors=list(dict.fromkeys(errors)),
            )
            results.append(result)
            if progress is not None:
                progress(format_round(result))
    finally:
        feeder.close()
        sampler.stop()
    return {
        "engine": engine.id,
        "settings": {"rounds": rounds, "monologue_s": monologue_s, "gap_s": gap_s, "answer_timeout_s": answer_timeout_s, "settle_s": settle_s},
        "rounds": [asdict(r) for r in results],
        "summary": summarise(results),
    }


def summarise(rounds: list[Round]) -> dict[str, Any]:
    """Reply rate, peak threads, memory growth from the first round's start to the last round's end."""
    if not rounds:
        return {}
    return {
        "reply_rate": round(sum(r.answered for r in rounds) / len(rounds), 3),
        "answered": sum(r.answered for r in rounds),
        "questions": len(rounds),
        "threads_start": rounds[0].threads_before,
        "threads_peak": max(r.threads_peak for r in rounds),
        "threads_end": rounds[-1].threads_after,
        "rss_start_mb": rounds[0].rss_before_mb,
        "rss_peak_mb": max(r.rss_peak_mb for r in rounds),
        "rss_end_mb": rounds[-1].rss_after_mb,
        "rss_growth_per_round_mb": round((rounds[-1].rss_after_mb - rounds[0].rss_after_mb) / max(1, len(rounds) - 1), 1),
        "cpu_after_answer_s_max": max(r.cpu_after_answer_s for r in rounds),
    }


def format_round(r: Round) -> str:
    """One line per round."""
    answered = f"answered ({r.reply_s:.1f} s after the question)" if r.answered and r.reply_s is not None else "NOT answered"
    return (
        f"round {r.index}: question {answered}; threads {r.threads_before} -> peak {r.threads_peak} -> {r.threads_after}; "
        f"RSS {r.rss_before_mb:.0f} -> peak {r.rss_peak_mb:.0f} -> {r.rss_after_mb:.0f} MB; "
        f"CPU in the quiet after: {r.cpu_after_answer_s:.1f} s; turns during the monologue: {r.monologue_turns}"
    )


def format_report(doc: dict[str, Any]) -> str:
    """Human-readable summary."""
    s = doc["summary"]
    settings = doc["settings"]
    lines = [
        f"engine: {doc['engine']}   {settings['rounds']} x ({settings['monologue_s']:g} s monologue, {settings['gap_s']:g} s gap, one question)",
        *(format_round(Round(**r)) for r in doc["rounds"]),
    ]
    if s:
        lines.append(
            f"reply rate {s['answered']}/{s['questions']}; threads {s['threads_start']} -> peak {s['threads_peak']} -> {s['threads_end']}; "
            f"RSS {s['rss_start_mb']:.0f} -> peak {s['rss_peak_mb']:.0f} -> {s['rss_end_mb']:.0f} MB "
            f"({s['rss_growth_per_round_mb']:+.0f} MB per round after the first); "
            f"most CPU burned in the quiet after an answer: {s['cpu_after_answer_s_max']:.1f} s"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench-soak`` command's options."""
    parser.add_argument("--engine", required=True, help="catalogue id")
    parser.add_argument("--rounds", type=positive_int, default=3, help="monologue + question rounds")
    parser.add_argument("--monologue", type=positive_float, default=90.0, help="seconds of monologue per round")
    parser.add_argument("--gap", type=non_negative_float, default=3.0, help="seconds of silence between the monologue and the question")
    parser.add_argument("--answer-timeout", type=positive_float, default=30.0, help="seconds the question may wait for its answer")
    parser.add_argument("--settle", type=non_negative_float, default=10.0, help="seconds of silence after each answer (CPU counted there)")
    parser.add_argument("--json", type=output_file, help="write the report here")
    parser.add_argument("--catalog", help="catalogue file")


def run_cli(args: argparse.Namespace) -> int:
    """``python -m speechlm_demo bench-soak``: 0 when every question was answered, 1 if not, 2 on errors."""
    from ..catalog import CatalogError, load_catalog
    from ..engines.base import EngineError
    from ..engines.registry import EngineRegistry
    from ..hardware import probe

    try:
        registry = EngineRegistry(load_catalog(args.catalog), probe())
        engine = registry.get(args.engine)
    except (CatalogError, EngineError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        doc = soak(
            engine, rounds=args.rounds, monologue_s=args.monologue, gap_s=args.gap, answer_timeout_s=args.answer_timeout,
            settle_s=args.settle, progress=lambda line: sys.stderr.write(line + "\n"),
        )
    except (RuntimeError, OSError) as exc:  # espeak-ng missing or failing
        sys.stderr.write(f"error: {exc}\n")
        return 2
    finally:
        registry.close()
    sys.stdout.write(format_report(doc) + "\n")
    if args.json and not write_json_report(args.json, doc):
        return 2
    return 0 if doc["summary"].get("reply_rate") == 1.0 else 1
