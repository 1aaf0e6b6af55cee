"""Settings read from environment variables, parsed one way everywhere (standard library only).

* :func:`env_flag`: ``1`` / ``true`` / ``yes`` / ``on`` and ``0`` / ``false`` / ``no`` / ``off``, any case,
  spaces around ignored; unset or blank is the default.
* :func:`env_int`: a whole number (``" 12 "``, ``"+3"``); unset or blank is the default; below ``minimum`` the
  minimum is used (clamped, so a setting that is too low still acts in its direction).
* :func:`cache_dir`: ``$SPEECHLM_CACHE`` or ``~/.cache/speechlm_demo``.
* :func:`drop_unreadable_gradio_port`: Gradio's own ``GRADIO_SERVER_PORT``, checked before Gradio reads it.

A value that cannot be read is never an error: the setting takes its default (or minimum) and one warning
names the variable, what it holds and what it accepts. Each variable and value is warned about once per
process, so a setting read for every session does not repeat the same line.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

log = logging.getLogger(__name__)

TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")
ACCEPTED = f"{'/'.join(TRUE)} for on, {'/'.join(FALSE)} for off"
CACHE_ENV = "SPEECHLM_CACHE"
GRADIO_PORT_ENV = "GRADIO_SERVER_PORT"

_warned: set[tuple[str, str]] = set()
_warned_lock = threading.Lock()


def _warn_once(name: str, raw: str, message: str, *args: object) -> None:
    with _warned_lock:
        if (name, raw) in _warned:
            return
        _warned.add((name, raw))
    log.warning(message, *args)


def env_flag(name: str, default: bool) -> bool:
    """The on/off setting in ``$name``; ``default`` when it is unset, blank or not one of the accepted words."""
    raw = os.environ.get(name, "")
    word = raw.strip().lower()
    if not word:
        return default
    if word in TRUE:
        return True
    if word in FALSE:
        return False
    _warn_once(
        name,
        raw,
        "%s=%r is not on or off (accepted, any case: %s); using the default, %s",
        name,
        raw,
        ACCEPTED,
        "on" if default else "off",
    )
    return default


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    """The whole number in ``$name``; ``default`` when it is unset, blank or not a whole number, ``minimum``
    when it is below ``minimum``."""
    raw = os.environ.get(name, "")
    if not raw.strip():
        return default
    try:
        value = int(raw)
    except ValueError:
        _warn_once(name, raw, "%s=%r is not a whole number; using the default, %d", name, raw, default)
        return default
    if minimum is not None and value < minimum:
        _warn_once(name, raw, "%s=%d is below the minimum, %d; using %d", name, value, minimum, minimum)
        return minimum
    return value


def is_port(text: str) -> bool:
    """Whether ``text`` is a TCP port number, a whole number 1-65535 (spaces around allowed)."""
    try:
        return 1 <= int(text) <= 65535
    except ValueError:
        return False


def drop_unreadable_gradio_port() -> None:
    """Remove a ``GRADIO_SERVER_PORT`` that is not a port (a whole number 1-65535; blank counts as unset),
    with one warning. Call it before Gradio is imported: Gradio reads the variable at import and stops on
    anything ``int()`` cannot read; without it the app starts on its default port, 7860."""
    raw = os.environ.get(GRADIO_PORT_ENV)
    if raw is None:
        return
    if not is_port(raw):
        if raw.strip():
            _warn_once(GRADIO_PORT_ENV, raw, "%s=%r is not a port (1-65535); using the default, 7860", GRADIO_PORT_ENV, raw)
        del os.environ[GRADIO_PORT_ENV]


def cache_dir() -> Path:
    """Where the app keeps what it builds or remembers: ``$SPEECHLM_CACHE`` or ``~/.cache/speechlm_demo``."""
    configured = os.environ.get(CACHE_ENV, "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "speechlm_demo"
