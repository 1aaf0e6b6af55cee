"""``python -m speechlm_demo bench``: feed prompt WAVs in real time through an engine; latency percentiles.

Each prompt goes through exactly the path the app uses (:mod:`speechlm_demo.measure.feeding`). The true end
of speech comes from a sidecar ``NAME.json`` (``{"speech_end_s": ...}``) or is estimated from the audio; it is
the ``reference_speech_end`` mark, and the ``*_ref_ms`` metrics are measured from it. The turn layer's own end
of speech stays ``user_speech_end`` (``voice_to_voice_ms``, ``turn_detect_ms``); ``speech_end_error_ms`` is how
far it lies from the reference. The JSON names the mark each metric is measured from (``measured_from``).
A sidecar ``NAME.txt`` holds the reference text for the ASR word error rate. ``--judges`` scores every reply
with the automatic judges (:mod:`speechlm_demo.judges`); a full-duplex engine's turn-taking is measured with
Full-Duplex-Bench's definitions from the sidecar's cue times (:mod:`speechlm_demo.judges.duplex`).
"""

from __future__ import annotations

import json
import logging
import platform
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..engines.base import AudioOut, Engine, ErrorEvent, SessionOptions
from ..hardware import HostInfo
from ..measure.feeding import NOTHING_HEARD, Feed, Prompt, run_prompt
from ..timeline import measured_from

log = logging.getLogger(__name__)

REPORTED = (
    "voice_to_voice_ref_ms", "voice_to_voice_ms", "turn_detect_ref_ms", "turn_detect_ms", "speech_end_error_ms",
    "asr_ms", "llm_ttft_ms", "tts_first_audio_ms", "engine_response_ms",
    "server_first_text_ms", "server_first_audio_ms",  # engines talking to a model server (vLLM-Omni, vLLM)
)
DECISION_KEYS = (
    "committed_by", "judged_complete", "transcript_confidence", "smart_turn_p", "smart_turn_ms",
    "lookback_words", "lookback_dangles", "lookback_held", "lookback_hear_ms",
)
PACKAGES = ("gradio", "fastrtc", "numpy", "torch", "faster-whisper", "llama_cpp_python", "piper-tts", "onnxruntime", "moshi")


@dataclass
class TurnResult:
    """What one prompt produced."""

    prompt: str
    repeat: int
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    marks_ms: dict[str, float] = field(default_factory=dict)
    measured_from: dict[str, str] = field(default_factory=dict)  # metric -> the mark it starts at
    user_text: str = ""
    reply_text: str = ""
    reference: str | None = None
    wer: float | None = None
    detail: str = ""
    speech_end_source: str = "estimated"
    premature_cuts: int = 0
    kind: str = ""
    decided: dict[str, Any] = field(default_factory=dict)  # how the turn ended: committed_by, verdicts
    judges: dict[str, Any] = field(default_factory=dict)
    not_judged: str = ""  # why --judges left this reply out (not the engine's own ok reply)
    duplex: dict[str, float | None] = field(default_factory=dict)


def word_error_rate(reference: str | None, hypothesis: str) -> float | None:
    """WER via jiwer, after lower-casing and stripping punctuation; None without a reference (or one with no
    words left, e.g. "…": there is nothing to count errors against)."""
    if not reference:
        return None
    import jiwer

    clean = jiwer.Compose([jiwer.ToLowerCase(), jiwer.RemovePunctuation(), jiwer.RemoveMultipleSpaces(), jiwer.Strip()])
    if not clean(reference):
        return None
    return round(float(jiwer.wer(clean(reference), clean(hypothesis) or "<empty>")), 3)


def summarise(turns: list[TurnResult]) -> dict[str, dict[str, float]]:
    """p50 / p95 / mean / n of every reported metric over the successful turns (``ok``: the engine's own
    answers; ASR WER and the judges' means too, saying how many other turns they left out)."""
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
    wers = [t.wer for t in turns if t.wer is not None and t.status == "ok"]
    if wers:
        summary["asr_wer"] = {"mean": round(float(np.mean(wers)), 3), "n": len(wers)}
    left_out = {
        "asr_wer": sum(t.wer is not None and t.status != "ok" for t in turns),
        "judges": sum(bool(t.not_judged or t.judges) and t.status != "ok" for t in turns),
        "fallback": sum(t.status == "fallback" for t in turns),
    }
    if left_out["asr_wer"] or left_out["judges"]:
        summary["left_out_of_means"] = left_out
    judged = [t.judges for t in turns if t.judges and t.status == "ok"]
    if judged:
        names = list(dict.fromkeys(k for j in judged for k, v in j.items() if isinstance(v, int | float) or v is None))
        means = {k: [j[k] for j in judged if isinstance(j.get(k), int | float)] for k in names}
        summary["judges"] = {k: round(float(np.mean(v)), 3) for k, v in means.items() if v}
    if any(t.duplex for t in turns):
        from ..judges.duplex import summarise_duplex

        summary["duplex"] = summarise_duplex(t.duplex for t in turns)
    summary["measured_from"] = {name: measured_from(name) for name in REPORTED if name in summary}  # type: ignore[misc]
    summary["turns"] = {"ok": sum(t.status == "ok" for t in turns), "total": len(turns)}
    heard = [t.marks_ms for t in turns if t.status == "ok" and {"turn_detected", "asr_final"} <= t.marks_ms.keys()]
    if heard:  # whether the end-of-turn decision waited for the transcript of the reply it committed
        early = sum(marks["turn_detected"] < marks["asr_final"] for marks in heard)
        summary["decided_before_transcript"] = {"turns": early, "total": len(heard)}
    looked = [t.decided for t in turns if t.status == "ok" and "lookback_dangles" in t.decided]
    if looked:  # finished words the second hearing (lookback_ms) alone held for the long silence, and its time
        held = sum(bool(d.get("lookback_held")) and d.get("committed_by") == "silence" for d in looked)
        summary["lookback_held"] = {"turns": held, "total": len(looked)}
        summary["lookback_hear_ms"] = {"p50": round(float(np.percentile([d["lookback_hear_ms"] for d in looked], 50)), 1)}
    cut = sum(t.premature_cuts > 0 for t in turns)
    summary["premature_cuts"] = {"prompts_cut": cut, "total": len(turns), "rate": round(cut / len(turns), 3) if turns else 0.0}
    kinds = sorted({t.kind for t in turns if t.kind})
    summary["premature_by_kind"] = {
        kind: {"prompts_cut": sum(t.premature_cuts > 0 for t in turns if t.kind == kind), "total": sum(t.kind == kind for t in turns)}
        for kind in kinds
    }
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


def duplex_behaviour(feed: Feed, cues: dict[str, float]) -> dict[str, float | None]:
    """Full-Duplex-Bench metrics of one prompt from the engine's audio laid on the prompt's clock."""
    from ..judges.duplex import duplex_metrics, output_track, speech_segments

    chunks = [(fed, e) for fed, (_, e) in zip(feed.fed_s, feed.arrivals, strict=True) if isinstance(e, AudioOut)]
    if not chunks:
        return duplex_metrics([], cues)
    rate = chunks[0][1].sample_rate
    signal, origin = output_track(((fed, e.pcm) for fed, e in chunks), rate)
    return duplex_metrics(speech_segments(signal, rate, origin), cues)


def benchmark(
    engine: Engine,
    prompts: list[Prompt],
    *,
    repeat: int = 1,
    tail_s: float = 4.0,
    timeout_s: float = 30.0,
    progress: Any = None,
    judge: Callable[[np.ndarray, int, str, dict[str, Any]], dict[str, Any]] | None = None,
    options: SessionOptions | None = None,
) -> list[TurnResult]:
    """Run every prompt ``repeat`` times; ``progress`` is a tqdm-like object (``update``). ``judge``
    (e.g. :meth:`speechlm_demo.judges.scorer.Judges.score`) scores each reply of the engine's own that ended ``ok``
    after its turn (another reply is left out, ``not_judged`` saying why: a fallback's is not the engine's).
    ``options``: every turn's session options (e.g. a seed, so repeats sample the same reply)."""
    rate = engine.entry.sample_rates.input
    results = []
    for r in range(repeat):
        for prompt in prompts:
            feed = run_prompt(engine, prompt, rate, tail_s, timeout_s, options)
            record = feed.answered
            if record is None:
                heard_nothing = any(isinstance(e, ErrorEvent) and e.message == NOTHING_HEARD for e in feed.events)
                why = NOTHING_HEARD if heard_nothing else f"no end of turn was detected within {timeout_s:g} s"
                result = TurnResult(prompt.path.name, r, "no turn", detail="; ".join([why, *prompt.notes]))
            else:
                tl = record.timeline
                result = TurnResult(
                    prompt.path.name, r, record.status, tl.metrics(), tl.relative_ms(), tl.measured_from(),
                    record.user_text, record.reply_text,
                    detail="; ".join(
                        part for part in (f"answered by the fallback {record.answered_by}" if record.answered_by else tl.detail, *prompt.notes) if part
                    ),
                )
            result.reference = prompt.reference
            result.wer = word_error_rate(prompt.reference, result.user_text) if result.user_text else None
            result.speech_end_source = prompt.end_source
            result.premature_cuts = len(feed.premature)
            result.kind = prompt.kind
            if record is not None:
                extra = record.timeline.extra
                result.decided = {k: extra[k] for k in DECISION_KEYS if k in extra}
            if engine.entry.duplex == "full":
                result.duplex = duplex_behaviour(feed, prompt.cues)
            if judge is not None and record is not None and len(record.audio):
                if result.status == "ok":  # the engine's own answer: a fallback's reply is not the engine's quality
                    result.judges = judge(record.audio, record.sample_rate, record.reply_text, record.to_dict())
                else:
                    result.not_judged = f"status {result.status}" + (f" (answered by {record.answered_by})" if record.answered_by else "")
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
    lines.append(f"{'metric':<24}{'p50':>9}{'p95':>9}{'mean':>9}{'n':>5}  measured from")
    for name in REPORTED:
        stats = doc["summary"].get(name)
        if stats:
            origin = doc["summary"]["measured_from"].get(name, "")
            lines.append(f"{name:<24}{stats['p50']:>9.0f}{stats['p95']:>9.0f}{stats['mean']:>9.0f}{stats['n']:>5}  {origin}")
    if "asr_wer" in doc["summary"]:
        lines.append(f"ASR word error rate (mean over {doc['summary']['asr_wer']['n']}): {doc['summary']['asr_wer']['mean']:.3f}")
    for name, stats in doc["summary"].get("duplex", {}).items():
        lines.append(f"duplex {name}: mean {stats['mean']:g}" + (f", p50 {stats['p50']:g}" if "p50" in stats else "") + f" (n {stats['n']})")
    if doc["summary"].get("judges"):
        lines.append("judges (mean over replies): " + ", ".join(f"{k} {v:g}" for k, v in doc["summary"]["judges"].items()))
    if "left_out_of_means" in doc["summary"]:
        out = doc["summary"]["left_out_of_means"]
        lines.append(f"left out of the ASR WER and judges' means (not the engine's own ok turn; {out['fallback']} answered by "
                     f"the fallback): {out['asr_wer']} transcript(s), {out['judges']} reply(ies)")
    ok, cuts = doc["summary"]["turns"], doc["summary"]["premature_cuts"]
    lines.append(f"turns ok: {ok['ok']}/{ok['total']}   premature cuts: {cuts['prompts_cut']}/{cuts['total']}")
    if "decided_before_transcript" in doc["summary"]:
        early = doc["summary"]["decided_before_transcript"]
        lines.append(f"end of turn decided before the transcript was in: {early['turns']}/{early['total']} turns")
    if "lookback_held" in doc["summary"]:
        held, took = doc["summary"]["lookback_held"], doc["summary"]["lookback_hear_ms"]["p50"]
        lines.append(f"finished words left to the long silence by the look-back: {held['turns']}/{held['total']} turns (its hearing p50 {took:g} ms)")
    by_kind = doc["summary"].get("premature_by_kind", {})
    if len(by_kind) > 1:
        lines.append("premature cuts by kind: " + ", ".join(f"{k} {v['prompts_cut']}/{v['total']}" for k, v in by_kind.items()))
    lines.append("")
    for t in doc["turns"]:
        decided = " ".join(f"{k}={v}" for k, v in t.get("decided", {}).items())
        lines.append(f"[{t['prompt']} #{t['repeat']}] {t['status']} ({decided}): you: {t['user_text']!r} -> agent: {t['reply_text']!r} {t['detail']}")
    return "\n".join(lines)


def webrtc_figures(row: dict[str, Any]) -> dict[str, Any]:
    """A ``--via webrtc`` row's own figures, each named ``webrtc_*``: its ``in_process_*`` figures are the
    in-process turn's metrics, which the turn itself reports."""
    return {k if k.startswith("webrtc") else f"webrtc_{k}": v for k, v in row.items() if k.endswith("_ms") and not k.startswith("in_process_")}


def write_csv(doc: dict[str, Any], path: Path) -> None:
    """One row per turn, metrics as columns (pandas), and a ``--via webrtc`` row's :func:`webrtc_figures`."""
    import pandas as pd

    webrtc = doc.get("webrtc", {}).get("rows") or [{}] * len(doc["turns"])  # bench --via webrtc: one row per turn
    rows = [
        {k: v for k, v in t.items() if k not in ("metrics", "marks_ms", "measured_from", "judges", "duplex")}
        | t["metrics"]
        | {f"judge_{k}": v for k, v in t.get("judges", {}).items()}
        | {f"duplex_{k}": v for k, v in t.get("duplex", {}).items()}
        | webrtc_figures(w)
        for t, w in zip(doc["turns"], webrtc, strict=True)
    ]
    pd.DataFrame(rows).to_csv(path, index=False)


def write_plot(doc: dict[str, Any], path: Path) -> None:
    """Box plot of each metric over the successful turns (those :func:`summarise` counts), and of the WebRTC
    figures when the run had them."""
    from ..plots import close, metrics_boxplot

    ok = [t for t in doc["turns"] if t["status"] == "ok"]
    values = {name: [t["metrics"][name] for t in ok if name in t["metrics"]] for name in REPORTED}
    for row in doc.get("webrtc", {}).get("rows", []):  # bench --via webrtc: its figures below the in-process ones
        for name, value in webrtc_figures(row).items():
            if value is not None and name != "webrtc_observer_gap_ms":
                values.setdefault(name, []).append(value)
    fig = metrics_boxplot(values, title=f"{doc['engine']} on {doc['host_description']}")
    fig.savefig(path)
    close(fig)


def startup_command(engine_id: str, port: int, *, catalog: str | None = None, host: str | None = None) -> list[str]:
    """``python app.py --engine ID --port PORT`` with the bench's ``--catalog`` and ``--host`` (``--simulate-host``)."""
    import sys

    app = Path(__file__).resolve().parents[2] / "app.py"
    command = [sys.executable, str(app), "--engine", engine_id, "--port", str(port)]
    if catalog:
        command += ["--catalog", catalog]
    if host:
        command += ["--simulate-host", host]
    return command


def last_lines(text: str, count: int = 8) -> str:
    """The last ``count`` non-blank lines of ``text``, indented, each on a line of its own (for an error)."""
    lines = [line.rstrip() for line in text.splitlines() if line.strip()][-count:]
    return "".join(f"\n  {line}" for line in lines)


def measure_startup(engine_id: str, timeout_s: float = 120.0, *, catalog: str | None = None, host: str | None = None) -> float:
    """Seconds from launching ``python app.py --engine ID`` until ``/api/health`` says it is loaded. A launch that
    fails or times out raises with the last lines app.py wrote to stderr."""
    import socket
    import subprocess
    import tempfile
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace") as errors:
        started = time.monotonic()
        proc = subprocess.Popen(startup_command(engine_id, port, catalog=catalog, host=host),
                                stdout=subprocess.DEVNULL, stderr=errors)
        exit_code: int | None = None
        try:
            while time.monotonic() - started < timeout_s:
                exit_code = proc.poll()
                if exit_code is not None:
                    break
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/health", timeout=1) as response:
                        if json.load(response).get("ready"):
                            return time.monotonic() - started
                except OSError:
                    pass
                time.sleep(0.1)
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        errors.seek(0)
        tail = last_lines(errors.read())
    said = f"; its last lines on stderr:{tail}" if tail else "; it wrote nothing to stderr"
    if exit_code is not None:
        raise RuntimeError(f"app.py exited with {proc.returncode}{said}")
    raise TimeoutError(f"{engine_id} not ready after {timeout_s:.0f} s{said}")
