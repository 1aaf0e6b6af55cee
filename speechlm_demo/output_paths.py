"""Checks on the files and folders a command will write, made before any work starts.

A report written after minutes of work must not fail then on a path that was wrong from the start: an existing
folder given as a file, a missing parent folder, a file in the way of a folder, or a place that cannot be written.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any


def output_file_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be written as a file (one line naming it), or ``None`` when it can."""
    target = Path(path)
    try:
        if target.is_dir():
            return f"{target} is a folder, not a file"
        parent = target.resolve().parent
        if not parent.is_dir():
            return f"no folder for the output file {target} ({parent} does not exist)"
        writable = os.access(target, os.W_OK) if target.exists() else os.access(parent, os.W_OK | os.X_OK)
    except (OSError, RuntimeError) as exc:  # a folder that cannot be entered, a name too long, a symlink loop
        return _unusable(target, exc)
    return None if writable else f"{target} cannot be written (permission denied)"


def output_folder_problem(path: str | Path) -> str | None:
    """Why ``path`` cannot be used (or made) as a folder to write into, or ``None`` when it can."""
    folder = Path(path)
    try:
        existing = folder.resolve()
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            what = "" if existing == folder.resolve() else f" (in the way of {folder})"
            return f"{existing} is not a folder{what}"
        writable = os.access(existing, os.W_OK | os.X_OK)
    except (OSError, RuntimeError) as exc:
        return _unusable(folder, exc)
    return None if writable else f"{existing} cannot be written (permission denied)"


def write_json_report(path: str | Path, doc: Any) -> bool:
    """Write a command's JSON report to ``path``; False, with one ``error:`` line, when the path went bad during
    the run (the report is still on stdout)."""
    try:
        Path(path).write_text(json.dumps(doc, indent=2))
    except OSError as exc:
        sys.stderr.write(f"error: the report was not written: {exc}\n")
        return False
    return True


def _unusable(path: Path, exc: Exception) -> str:
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"{path} cannot be used: {reason}"
