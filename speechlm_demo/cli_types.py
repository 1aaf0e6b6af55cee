"""Argparse ``type=`` checkers for the command line's numeric flags, shared by every subcommand.

A bad value (not a number, NaN, infinite, out of range) is refused by argparse itself: a one-line message
naming the flag and exit status 2, never a traceback or a run on a value that makes no sense.
"""

from __future__ import annotations

import argparse
import math


def _number(text: str, kind: type[int | float]) -> int | float:
    try:
        value = kind(text)
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"{what} is needed, not {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"a finite number is needed, not {text!r}")
    return value


def positive_int(text: str) -> int:
    """A whole number >= 1 (``--repeat``, ``--rounds``, ``--frames``)."""
    value = int(_number(text, int))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {text!r}")
    return value


def at_least_two(text: str) -> int:
    """A whole number >= 2 (``bench-votes --engines``: a pair needs two)."""
    value = int(_number(text, int))
    if value < 2:
        raise argparse.ArgumentTypeError(f"must be 2 or more, not {text!r}")
    return value


def non_negative_int(text: str) -> int:
    """A whole number >= 0 (``--warmup``)."""
    value = int(_number(text, int))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (durations that must last: ``--timeout``, ``--monologue``)."""
    value = float(_number(text, float))
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (durations that may be nothing: ``--tail``, ``--gap``, ``--after-ms``)."""
    value = float(_number(text, float))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text!r}")
    return value


def positive_int_list(text: str) -> list[int]:
    """Comma-separated whole numbers >= 1, e.g. ``1,4,16`` (``bench-moshi --batch``)."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    if not parts:
        raise argparse.ArgumentTypeError(f"comma-separated whole numbers of 1 or more are needed, not {text!r}")
    return [positive_int(part) for part in parts]
