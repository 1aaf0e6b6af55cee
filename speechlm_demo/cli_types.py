"""Argparse ``type=`` checkers for the command line's flags (the CLI's subcommands and ``app.py``).

A bad value (not a number, NaN, infinite, out of range, not a port, not a host, an output path
that cannot be written) is refused by argparse itself: a one-line message naming the flag and exit status 2, never a traceback or a run on a value that makes no sense.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable

from .env_settings import is_port
from .hardware import simulated_host
from .output_paths import output_file_problem, output_folder_problem


def _number(text: str, kind: type[int | float]) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{what} is needed, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"a finite number is needed, not {text!r}")
    return value


def _at_least(text: str, kind: type[int | float], low: int, *, above: bool = False) -> int | float:
    """``text`` as ``kind``, refused unless it is at least ``low`` (more than ``low`` with ``above``)."""
    value = _number(text, kind)
    if value < low or (above and value == low):
        bound = f"more than {low}" if above else f"{low} or more"
        raise argparse.ArgumentTypeError(f"must be {bound}, not {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--repeat``, ``--rounds``, ``--frames``)."""
    return int(_at_least(text, int, 1))


def at_least_two(text: str) -> int:
    """A whole number >= 2 (``bench-votes --engines``: a pair needs two)."""
    return int(_at_least(text, int, 2))


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (``--warmup``)."""
    return int(_at_least(text, int, 0))


def positive_float(text: str) -> float:
    """A finite number > 0 (durations that must last: ``--timeout``, ``--monologue``)."""
    return float(_at_least(text, float, 0, above=True))


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (durations that may be nothing: ``--tail``, ``--gap``, ``--after-ms``)."""
    return float(_at_least(text, float, 0))


def positive_int_list(text: str) -> list[int]:
    """Comma-separated whole numbers >= 1, e.g. ``1,4,16`` (``bench-moshi --batch``)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"comma-separated whole numbers of 1 or more are needed, not {text!r}")
    return [positive_int(part) for part in parts]


def port_number(text: str) -> int:
    """A TCP port, 1-65535 (``app.py --port``)."""
    if is_port(text):
        return int(text)
    shown = text.strip() if text.strip().lstrip("+-").isdigit() else repr(text)
    raise argparse.ArgumentTypeError(f"{shown} is not a port number (1-65535)")


def host_spec(text: str) -> str:
    """A value :func:`~.hardware.simulated_host` accepts (``app.py --simulate-host``)."""
    try:
        simulated_host(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def output_file(text: str) -> str:
    """A file that can be written: not a folder, in a folder that exists (``--json``, ``--csv``, ``--plot``);
    ``~`` expanded. An empty value stays empty: no such output."""
    return _checked_output(text, output_file_problem)


def plot_file(text: str) -> str:
    """An :func:`output_file` whose suffix names a format matplotlib writes (``.png``, ``.svg``, ``.pdf``, ...;
    any case); no suffix: a PNG, as matplotlib decides (``--plot``)."""
    path = output_file(text)
    suffix = os.path.splitext(path)[1].lstrip(".").lower()
    if suffix:
        from matplotlib.backend_bases import FigureCanvasBase

        formats = sorted(FigureCanvasBase.get_supported_filetypes())
        if suffix not in formats:
            raise argparse.ArgumentTypeError(f"cannot write a plot as .{suffix}: use one of .{', .'.join(formats)}")
    return path


def output_folder(text: str) -> str:
    """A folder that exists or can be made, and can be written (``leaderboard --plots``); ``~`` expanded, an
    empty value stays empty."""
    return _checked_output(text, output_folder_problem)


def _checked_output(text: str, problem_of: Callable[[str], str | None]) -> str:
    if not text:
        return text
    path = os.path.expanduser(text)
    problem = problem_of(path)
    if problem:
        raise argparse.ArgumentTypeError(problem)
    return path
