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
from ..cli_types import output_file
from ..prompt_files import Skipped, reference_text
from .scorer import Judges

log = logging.getLogger(__name__)


def judge_folder(folder: Path, judges: Judges, skipped: list[Skipped] | None = None) -> list[dict[str, Any]]:
    """One row per WAV of ``folder`` (sorted by name; ``.wav`` in any case, as a recorder on another system names
    them). A WAV that cannot be read, or whose reference text cannot (not UTF-8), gets a row with ``error`` set
    and is not judged: its reason is logged and added to ``skipped`` if given."""
    rows = []
    for wav in sorted(path for path in folder.iterdir() if path.suffix.lower() == ".wav"):
        try:
            text = reference_text(wav.with_suffix(".txt")) or ""
            audio, rate = read_audio(str(wav))
        except (AudioError, ValueError) as exc:
            log.warning("skipped %s: %s", wav.name, exc)
            if skipped is not None:
                skipped.append(Skipped(wav.name, str(exc)))
            rows.append({"file": wav.name, "reference": "", "error": str(exc)})
            continue
        rows.append({"file": wav.name, "reference": text, **judges.score(audio, rate, text, _turn_record(wav.with_suffix(".json")))})
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
    parser.add_argument("--json", type=output_file, help="write every file's scores and the means here")
    parser.add_argument("--csv", type=output_file, help="write one row per file here")
    parser.add_argument("--no-asr", action="store_true", help="skip the round-trip ASR (WER)")
    parser.add_argument("--no-dnsmos", action="store_true", help="skip DNSMOS")


def run_cli(args: argparse.Namespace) -> int:
    """Run ``judge``: 0 when a file was judged, 1 when none could be (the reasons are printed), 2 on errors."""
    folder = Path(args.directory)
    if not folder.is_dir():
        sys.stderr.write(f"error: {folder} is not a folder\n")
        return 2
    skipped: list[Skipped] = []
    try:
        rows = judge_folder(folder, Judges(dnsmos=not args.no_dnsmos, roundtrip=not args.no_asr), skipped)
    except OSError as exc:  # a folder that can be entered but not listed
        sys.stderr.write(f"error: cannot list {folder}: {exc.strerror or exc}\n")
        return 2
    if not rows:
        sys.stderr.write(f"error: no .wav files in {folder}\n")
        return 2
    means = summary(rows)
    writers = [
        (args.json, lambda: Path(args.json).write_text(json.dumps({"folder": str(folder), "files": rows, "mean": means}, indent=2, default=_plain))),
        (args.csv, lambda: pd.DataFrame(rows).to_csv(args.csv, index=False, errors="surrogateescape")),  # any file name
    ]
    unwritten = []
    for target, write in writers:
        try:
            if target:
                write()
        except OSError as exc:  # the path went bad while the files were judged: the table below still shows them
            unwritten.append(f"{target} ({exc.strerror or exc})")
    columns = [c for c in ("file", "dnsmos_ovrl", "roundtrip_wer", "words_per_minute", "duration_s", "loudness_lufs", "clipping") if c in pd.DataFrame(rows)]
    sys.stdout.write(pd.DataFrame(rows)[columns].to_string(index=False) + "\n")
    unjudged = {item.name for item in skipped}
    partly = [f"  {row['file']}: {row['error']}\n" for row in rows if row.get("error") and row["file"] not in unjudged]
    if partly:
        sys.stderr.write(f"{len(partly)} file(s) judged with errors:\n" + "".join(partly))
    if skipped:
        sys.stderr.write(f"{len(skipped)} file(s) not judged:\n" + "".join(f"  {item}\n" for item in skipped))
    if unwritten:
        sys.stderr.write(f"error: the scores above were not written to {' nor '.join(unwritten)}\n")
        return 2
    if len(skipped) == len(rows):
        sys.stderr.write(f"error: none of the {len(rows)} .wav file(s) in {folder} could be judged\n")
        return 1
    return 0


def _plain(value: Any) -> Any:
    """JSON for numpy scalars."""
    return value.item() if hasattr(value, "item") else str(value)
