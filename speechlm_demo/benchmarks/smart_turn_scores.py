"""``python -m speechlm_demo smart-turn WAV|DIR ...``: Smart Turn v3's probability at each pause and at the end.

Each prompt is scored as the turn layer hears it: the audio up to the end of a spoken part plus ``--after-ms``
of what follows (the session asks Smart Turn after ``smart_turn_silence_ms``, 200 ms by default). With a
``make-prompts`` sidecar (``NAME.json``: ``kind`` and exact ``segments``) every part's end is scored, the
last one as ``end``, the others as ``pause``; without one, the end of the loud speech (estimated), under
the folder's name as its kind. The summary gives per kind the median probability at pauses and at ends:
a lead-in that scores like a finished question at its pause is one the audio alone cannot hold. The last
line says how well the probability separates ends from pauses over all prompts (see :func:`separation`).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..cli_types import non_negative_float
from ..measure.feeding import Prompt, load_prompts, prompt_from
from ..prompt_files import read_prompt

log = logging.getLogger(__name__)

RATE = 16_000  # Smart Turn's rate: prompts are read at it


@dataclass(frozen=True)
class Score:
    """Smart Turn's probability that the turn is finished, heard ``at_s`` seconds into ``name``."""

    name: str
    kind: str
    at: str  # "pause" (after a part that is not the last) or "end"
    at_s: float
    probability: float


def cut_points(prompt: Prompt, after_s: float) -> list[tuple[str, float]]:
    """Where the turn layer would ask: after each part's end (sidecar ``segments``), else after the end of speech."""
    ends = [end for _, end in prompt.segments] or [prompt.speech_end_s]
    length_s = len(prompt.audio) / RATE
    last = len(ends) - 1
    return [("end" if i == last else "pause", min(end + after_s, length_s)) for i, end in enumerate(ends)]


def _prompts(paths: Iterable[Path]) -> Iterable[Prompt]:
    """The prompts under ``paths`` with their sidecars (read as ``bench`` reads them); skips are logged."""
    for path in paths:
        if path.is_dir():
            try:
                yield from load_prompts(path, RATE, max_s=0)
            except FileNotFoundError as exc:
                log.warning("skipped %s: %s", path, exc)
            continue
        try:
            yield prompt_from(read_prompt(path, RATE, max_s=0), RATE, path.parent.name)
        except ValueError as exc:  # unreadable audio (AudioError) or sidecar
            log.warning("skipped %s: %s", path, exc)


def score_files(model: object, paths: Iterable[Path], after_s: float = 0.2) -> list[Score]:
    """Scores of every prompt under ``paths`` (files or folders; unreadable files are skipped with a warning)."""
    scores = []
    for prompt in _prompts(paths):
        for at, at_s in cut_points(prompt, after_s):
            probability = model.probability(prompt.audio[: int(at_s * RATE)], RATE)  # type: ignore[attr-defined]
            scores.append(Score(prompt.path.name, prompt.kind, at, round(at_s, 3), probability))
    return scores


def summary(scores: list[Score]) -> list[dict[str, object]]:
    """Per kind (in order of first appearance): prompts, median probability at pauses and at ends (None if none)."""
    rows = []
    for kind in dict.fromkeys(s.kind for s in scores):
        mine = [s for s in scores if s.kind == kind]

        def median(at: str, mine: list[Score] = mine) -> float | None:
            values = [s.probability for s in mine if s.at == at]
            return statistics.median(values) if values else None

        rows.append({"kind": kind, "prompts": len({s.name for s in mine}), "pause_median": median("pause"), "end_median": median("end")})
    return rows


def separation(scores: list[Score], threshold: float = 0.5) -> dict[str, float | int] | None:
    """How well Smart Turn tells ends from pauses: ``auc``, the chance that a random end scores above a random
    pause (ties count half; 0.5 is a coin, 1.0 perfect), and how many of each score above ``threshold``.
    ``None`` unless there are both ends and pauses."""
    ends = [s.probability for s in scores if s.at == "end"]
    pauses = [s.probability for s in scores if s.at == "pause"]
    if not ends or not pauses:
        return None
    above = sum((e > p) + 0.5 * (e == p) for e in ends for p in pauses)
    return {
        "auc": above / (len(ends) * len(pauses)),
        "ends": len(ends),
        "ends_above": sum(e > threshold for e in ends),
        "pauses": len(pauses),
        "pauses_above": sum(p > threshold for p in pauses),
    }


def format_report(scores: list[Score]) -> str:
    """One line per score, then the per-kind table."""
    width = max(len(s.name) for s in scores)
    lines = [f"{'file':<{width}}  {'kind':<12} {'at':<5} {'s':>6}  p"]
    lines += [f"{s.name:<{width}}  {s.kind:<12} {s.at:<5} {s.at_s:>6.2f}  {s.probability:.3f}" for s in scores]
    lines += ["", f"{'kind':<12} {'prompts':>7}  {'median p at pauses':>18}  {'median p at end':>15}"]
    for row in summary(scores):
        pause, end = (f"{v:.3f}" if v is not None else "-" for v in (row["pause_median"], row["end_median"]))
        lines.append(f"{row['kind']:<12} {row['prompts']:>7}  {pause:>18}  {end:>15}")
    split = separation(scores)
    if split is not None:
        lines.append(
            f"\nends vs pauses: AUC {split['auc']:.2f} (0.5 = chance); above 0.5: ends {split['ends_above']}/{split['ends']}, "
            f"pauses {split['pauses_above']}/{split['pauses']}"
        )
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``smart-turn`` command's options."""
    parser.add_argument("paths", nargs="+", help="audio files and/or prompt folders (make-prompts sidecars give kind and parts)")
    parser.add_argument("--after-ms", type=non_negative_float, default=200.0, help="silence after each part's end that Smart Turn hears")


def run_cli(args: argparse.Namespace) -> int:
    """``python -m speechlm_demo smart-turn``: 0 when something was scored, 1 if nothing was, 2 on errors."""
    from ..turntaking.smart_turn import SmartTurnError, shared_model

    missing = [p for p in args.paths if not Path(p).exists()]
    if missing:
        sys.stderr.write(f"error: no such file or folder: {', '.join(missing)}\n")
        return 2
    try:
        model = shared_model()
    except SmartTurnError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    scores = score_files(model, [Path(p) for p in args.paths], args.after_ms / 1000)
    if not scores:
        sys.stderr.write("error: no usable audio file among the paths given\n")
        return 1
    sys.stdout.write(format_report(scores) + "\n")
    return 0
