"""Score a folder of WAVs with every judge: ``python -m speechlm_demo judge DIR --json OUT [--csv OUT]``.

``NAME.txt`` beside ``NAME.wav`` is the text the audio is meant to say (the round-trip WER's reference and
the words of the speaking rate); without it the WER is empty and the rate counts what the ASR heard.
``NAME.json``, when it is a turn record (a timeline document with ``metrics``), gives the latency figures.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..audio import AudioError, read_audio
from .scorer import Judges

log = logging.getLogger(__name__)


def judge_folder(folder: Path, judges: Judges) -> list[dict[str, Any]]:
    """One row per WAV of ``folder`` (sorted by name); unreadable files get a row with ``error`` set."""
    rows = []
    for wav in sorted(folder.glob("*.wav")):
        reference = wav.with_suffix(".txt")
        text = reference.read_text(encoding="utf-8").strip() if reference.is_file() else ""
        record = _turn_record(wav.with_suffix(".json"))
        try:
            audio, rate = read_audio(str(wav))
        except AudioError as exc:
            rows.append({"file": wav.name, "reference": text, "error": str(exc)})
            continue
        rows.append({"file": wav.name, "reference": text, **judges.score(audio, rate, text, record)})
    return rows


def _turn_record(path: Path) -> dict[str, Any] | None:
    """The timeline document in ``path``, if it is one (a benchmark prompt's sidecar is not)."""
    if not path.is_file():
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        log.warning("%s is not readable JSON; no latency figures for it", path.name)
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("metrics"), dict) else None


def summary(rows: list[dict[str, Any]]) -> dict[str, float]:
    """Mean of every numeric judge over the files that have it."""
    frame = pd.DataFrame(rows)
    numeric = frame.select_dtypes("number")
    return {name: round(float(value), 4) for name, value in numeric.mean().items() if pd.notna(value)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``judge`` subcommand's options."""
    parser.add_argument("directory", help="folder of WAVs (+ optional NAME.txt reference texts)")
    parser.add_argument("--json", help="write every file's scores and the means here")
    parser.add_argument("--csv", help="write one row per file here")
    parser.add_argument("--no-asr", action="store_true", help="skip the round-trip ASR (WER)")
    parser.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``judge``; returns the exit status."""
    folder = Path(args.directory)
    if not folder.is_dir():
        sys.stderr.write(f"error: {folder} is not a folder\n")
        return 2
    for output in (args.json, args.csv):
        if output and not Path(output).resolve().parent.is_dir():
            sys.stderr.write(f"error: no folder for the output file {output}\n")
            return 2
    rows = judge_folder(folder, Judges(dnsmos=not args.no_dnsmos, roundtrip=not args.no_asr))
    if not rows:
        sys.stderr.write(f"error: no .wav files in {folder}\n")
        return 2
    means = summary(rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"folder": str(folder), "files": rows, "mean": means}, indent=2, default=_plain))
    if args.csv:
        pd.DataFrame(rows).to_csv(args.csv, index=False)
    columns = [c for c in ("file", "dnsmos_ovrl", "roundtrip_wer", "words_per_minute", "duration_s", "loudness_lufs", "clipping") if c in pd.DataFrame(rows)]
    sys.stdout.write(pd.DataFrame(rows)[columns].to_string(index=False) + "\n")
    failed = [row["file"] for row in rows if row.get("error")]
    if failed:
        sys.stderr.write(f"{len(failed)} file(s) with errors: {', '.join(failed)}\n")
    return 0


def _plain(value: Any) -> Any:
    """JSON for numpy scalars."""
    return value.item() if hasattr(value, "item") else str(value)
