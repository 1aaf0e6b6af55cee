"""Benchmark: feed prompt WAVs in real time through an engine's session and report latency percentiles.

Each prompt goes through exactly the path the app uses (``Engine.open_session`` with the same
turn-taking). The true end of speech comes from a sidecar ``NAME.json`` (``{"speech_end_s": ...}``) or
is estimated from the audio; all latencies are measured from it (the VAD's own estimate is kept as
``vad_speech_end``). A sidecar ``NAME.txt`` holds the reference text for the ASR word error rate.
"""

from __future__ import annotations

import json
import logging
import platform
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from .audio import chunks, loud_span
from .engines.base import Engine, ErrorEvent, Event, SessionOptions, TextOut, TurnEnd
from .hardware import HostInfo
from .prompt_files import MAX_PROMPT_S, Skipped, read_prompt_folder
from .timeline import Timeline

log = logging.getLogger(__name__)

FRAME_S = 0.02
PREMATURE_TOLERANCE_S = 0.05
LEAD_SILENCE_S = 0.5
NOTHING_HEARD = "no turn was heard in the audio (no speech detected), so no reply is coming"
REPORTED = ("voice_to_voice_ms", "turn_detect_ms", "asr_ms", "llm_ttft_ms", "tts_first_audio_ms", "engine_response_ms")
PACKAGES = ("gradio", "fastrtc", "numpy", "torch", "faster-whisper", "llama_cpp_python", "piper-tts", "onnxruntime", "moshi")


@dataclass
class Prompt:
    """One prompt WAV with its optional sidecars."""

    path: Path
    audio: np.ndarray
    speech_end_s: float
    reference: str | None = None
    end_source: str = "estimated"
    notes: list[str] = field(default_factory=list)


def estimate_speech_end(audio: np.ndarray, rate: int, threshold_dbfs: float = -40.0) -> float:
    """Seconds at which the last 20 ms window louder than ``threshold_dbfs`` ends."""
    span = loud_span(audio, rate, threshold_dbfs, FRAME_S)
    return span[1] / rate if span else 0.0


def load_prompts(directory: Path, rate: int, max_s: float = MAX_PROMPT_S, skipped: list[Skipped] | None = None) -> list[Prompt]:
    """Every audio file soundfile reads in ``directory`` (sorted), resampled to ``rate`` and cut at ``max_s``,
    with its sidecars. Skipped files are logged with their reason (see :mod:`speechlm_demo.prompt_files`)
    and added to ``skipped`` if given."""
    found, passed_over = read_prompt_folder(directory, rate, max_s)
    for item in passed_over:
        log.warning("skipped %s", item)
    if skipped is not None:
        skipped.extend(passed_over)
    prompts = []
    for item in found:
        meta, text = item.path.with_suffix(".json"), item.path.with_suffix(".txt")
        end, source = estimate_speech_end(item.audio, rate), "estimated"
        if meta.exists():
            end, source = min(float(json.loads(meta.read_text())["speech_end_s"]), len(item.audio) / rate), "sidecar"
        reference = text.read_text().strip() if text.exists() else None
        prompts.append(Prompt(item.path, item.audio, end, reference, source, item.notes))
    if not prompts:
        why = "; ".join(str(item) for item in passed_over) or "the folder holds no audio files"
        raise FileNotFoundError(f"no usable prompt audio files in {directory} ({why})")
    return prompts


@dataclass
class TurnResult:
    """What one prompt produced."""

    prompt: str
    repeat: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    marks_ms: dict[str, float] = field(default_factory=dict)
    user_text: str = ""
    reply_text: str = ""
    reference: str | None = None
    wer: float | None = None
    detail: str = ""
    speech_end_source: str = "estimated"
    premature_cuts: int = 0


@dataclass
class Feed:
    """What feeding one prompt produced: every turn end, every event with its arrival time, the true end."""

    turn_ends: list[TurnEnd]
    arrivals: list[tuple[float, Event]]
    true_end: float

    @property
    def events(self) -> list[Event]:
        """The events alone, in arrival order."""
        return [event for _, event in self.arrivals]


def is_premature(timeline: Timeline, true_end: float) -> bool:
    """Whether the turn was committed before the true end of speech (``true_end``, clock seconds): a cut."""
    detected = timeline.marks.get("turn_detected")
    return detected is not None and detected < true_end - PREMATURE_TOLERANCE_S


def run_prompt(
    engine: Engine, prompt: Prompt, rate: int, tail_s: float, timeout_s: float, options: SessionOptions | None = None
) -> Feed:
    """Feed one prompt in real time (20 ms frames), then silence, until a turn ends after the true end of
    speech (or time runs out). Turn ends before it are premature cuts; every mark is measured from it."""
    arrivals: list[tuple[float, Event]] = []
    ended = threading.Event()
    started = time.monotonic()
    true_end = started + LEAD_SILENCE_S + prompt.speech_end_s

    def collect(event: Event) -> None:
        arrivals.append((time.monotonic(), event))
        if isinstance(event, TurnEnd) and not is_premature(event.timeline, true_end):
            ended.set()

    session = engine.open_session(options or SessionOptions(), collect)
    lead = np.zeros(int(LEAD_SILENCE_S * rate), np.float32)
    audio = np.concatenate([lead, prompt.audio, np.zeros(int(tail_s * rate), np.float32)])
    frame = int(rate * FRAME_S)
    try:
        for index, piece in enumerate(chunks(audio, frame)):
            due = started + index * FRAME_S
            time.sleep(max(0.0, due - time.monotonic()))
            session.push_audio(piece)
            if ended.is_set():
                break
        session.flush()
        deadline = time.monotonic() + timeout_s
        while not ended.is_set() and session.reply_pending() and time.monotonic() < deadline:
            ended.wait(min(0.05, max(0.0, deadline - time.monotonic())))
        if not ended.is_set() and not session.reply_pending() and not any(isinstance(e, TurnEnd) for _, e in arrivals):
            arrivals.append((time.monotonic(), ErrorEvent(NOTHING_HEARD)))  # why there is no turn, without the wait
        turn_ends = [e for _, e in list(arrivals) if isinstance(e, TurnEnd)]
        for turn_end in turn_ends:
            marks = turn_end.timeline.marks
            if "user_speech_end" in marks:
                marks["vad_speech_end"] = marks.pop("user_speech_end")
            marks["user_speech_end"] = true_end
        return Feed(turn_ends, list(arrivals), true_end)
    finally:
        session.close()


def word_error_rate(reference: str | None, hypothesis: str) -> float | None:
    """WER via jiwer, after lower-casing and stripping punctuation; None without a reference."""
    if not reference:
        return None
    import jiwer

    clean = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])
    return round(float(jiwer.wer(clean(reference), clean(hypothesis) or "<empty>")), 3)


def summarise(turns: list[TurnResult]) -> dict[str, dict[str, float]]:
    """p50 / p95 / mean / n of every reported metric over the successful turns."""
    summary: dict[str, dict[str, float]] = {}
    for name in REPORTED:
        values = [t.metrics[name] for t in turns if t.status == "ok" and name in t.metrics]
        if values:
            summary[name] = {
                "p50": round(float(np.percentile(values, 50)), 1),
                "p95": round(float(np.percentile(values, 95)), 1),
                "mean": round(float(np.mean(values)), 1),
                "n": len(values),
            }
    wers = [t.wer for t in turns if t.wer is not None]
    if wers:
        summary["asr_wer"] = {"mean": round(float(np.mean(wers)), 3), "n": len(wers)}
    summary["turns"] = {"ok": sum(t.status == "ok" for t in turns), "total": len(turns)}
    cut = sum(t.premature_cuts > 0 for t in turns)
    summary["premature_cuts"] = {"prompts_cut": cut, "total": len(turns), "rate": round(cut / len(turns), 3) if turns else 0.0}
    return summary


def versions() -> dict[str, str]:
    """Installed versions of the packages that shape the numbers."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def benchmark(
    engine: Engine, prompts: list[Prompt], *, repeat: int = 1, tail_s: float = 4.0, timeout_s: float = 30.0, progress: Any = None
) -> list[TurnResult]:
    """Run every prompt ``repeat`` times; ``progress`` is a tqdm-like object (``update``)."""
    rate = engine.entry.sample_rates.input
    results = []
    for r in range(repeat):
        for prompt in prompts:
            feed = run_prompt(engine, prompt, rate, tail_s, timeout_s)
            turn_ends, events = feed.turn_ends, feed.events
            premature = [t for t in turn_ends if is_premature(t.timeline, feed.true_end)]
            turn_end = next((t for t in turn_ends if t not in premature), None)
            user = " ".join(e.text for e in events if isinstance(e, TextOut) and e.role == "user" and e.final)
            reply = " ".join(e.text for e in events if isinstance(e, TextOut) and e.role == "agent" and e.final)
            if turn_end is None:
                heard_nothing = any(isinstance(e, ErrorEvent) and e.message == NOTHING_HEARD for e in events)
                why = NOTHING_HEARD if heard_nothing else f"no end of turn was detected within {timeout_s:g} s"
                result = TurnResult(prompt.path.name, r, "no turn", detail="; ".join([why, *prompt.notes]))
            else:
                tl = turn_end.timeline
                detail = "; ".join(part for part in (tl.detail, *prompt.notes) if part)
                result = TurnResult(prompt.path.name, r, tl.status, tl.metrics(), tl.relative_ms(), detail=detail)
            result.user_text, result.reply_text, result.reference = user, reply, prompt.reference
            result.wer = word_error_rate(prompt.reference, user) if user else None
            result.speech_end_source = prompt.end_source
            result.premature_cuts = len(premature)
            results.append(result)
            if progress is not None:
                progress.update(1)
    return results


def report(engine_id: str, host: HostInfo, turns: list[TurnResult]) -> dict[str, Any]:
    """The JSON document: host, versions, summary and every turn."""
    return {
        "engine": engine_id,
        "host": host.to_dict(),
        "host_description": host.describe(),
        "versions": versions(),
        "summary": summarise(turns),
        "turns": [t.__dict__ for t in turns],
    }


def format_summary(doc: dict[str, Any]) -> str:
    """Human-readable table of the summary and the reply transcripts."""
    lines = [f"engine: {doc['engine']}   host: {doc['host_description']}", "versions: " + ", ".join(f"{k} {v}" for k, v in doc["versions"].items()), ""]
    lines.append(f"{'metric':<24}{'p50':>9}{'p95':>9}{'mean':>9}{'n':>5}")
    for name in REPORTED:
        stats = doc["summary"].get(name)
        if stats:
            lines.append(f"{name:<24}{stats['p50']:>9.0f}{stats['p95']:>9.0f}{stats['mean']:>9.0f}{stats['n']:>5}")
    if "asr_wer" in doc["summary"]:
        lines.append(f"ASR word error rate (mean over {doc['summary']['asr_wer']['n']}): {doc['summary']['asr_wer']['mean']:.3f}")
    ok, cuts = doc["summary"]["turns"], doc["summary"]["premature_cuts"]
    lines += [f"turns ok: {ok['ok']}/{ok['total']}   premature cuts: {cuts['prompts_cut']}/{cuts['total']}", ""]
    for t in doc["turns"]:
        lines.append(f"[{t['prompt']} #{t['repeat']}] {t['status']}: you: {t['user_text']!r} -> agent: {t['reply_text']!r} {t['detail']}")
    return "\n".join(lines)


def write_csv(doc: dict[str, Any], path: Path) -> None:
    """One row per turn, metrics as columns (pandas)."""
    import pandas as pd

    rows = [{k: v for k, v in t.items() if k not in ("metrics", "marks_ms")} | t["metrics"] for t in doc["turns"]]
    pd.DataFrame(rows).to_csv(path, index=False)


def write_plot(doc: dict[str, Any], path: Path) -> None:
    """Box plot of each metric over the successful turns (those :func:`summarise` counts)."""
    from .plots import close, metrics_boxplot

    ok = [t for t in doc["turns"] if t["status"] == "ok"]
    values = {name: [t["metrics"][name] for t in ok if name in t["metrics"]] for name in REPORTED}
    fig = metrics_boxplot(values, title=f"{doc['engine']} on {doc['host_description']}")
    fig.savefig(path)
    close(fig)


def measure_startup(engine_id: str, timeout_s: float = 120.0) -> float:
    """Seconds from launching ``python app.py --engine ID`` until ``/api/health`` says it is loaded."""
    import socket
    import subprocess
    import sys
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = Path(__file__).resolve().parent.parent / "app.py"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, str(app), "--engine", engine_id, "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while time.monotonic() - started < timeout_s:
            if proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {proc.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as response:
                    if json.load(response).get("ready"):
                        return time.monotonic() - started
            except OSError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"{engine_id} not ready after {timeout_s:.0f} s")
    finally:
        proc.terminate()
        proc.wait(10)
