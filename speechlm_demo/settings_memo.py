"""Settings the catalogue has already checked, remembered on disk so that loading it imports no engine module.

Checking an entry's ``defaults`` against its engine class's typed ``Settings`` imports the class's module, and
engine modules import their clients (httpx, aiohttp, onnxruntime, ...): about half a second at every start. A
successful check depends only on the entry's class and defaults and on this package's code, so its result is
remembered under exactly those: the class and defaults as JSON, in a file named by a hash of every source file
of this package and the Python and pydantic versions. A changed default, a changed source file or another
version misses and is checked by import again. A failed check is never remembered, so a wrong setting always
stops the app; classes outside this package are always checked by import. The files live in ``$SPEECHLM_CACHE``
(default ``~/.cache/speechlm_demo``); when they cannot be read or written, the check simply runs.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

import pydantic

from .env_settings import cache_dir

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent
KEEP_FILES = 8  # memo files of other code versions (other checkouts, earlier edits) kept besides the newest


def code_fingerprint(root: Path = PACKAGE) -> str:
    """A hash of every ``.py`` file under ``root`` (paths and contents) and of the Python and pydantic versions."""
    digest = hashlib.sha256(f"{platform.python_version()} {pydantic.VERSION}".encode())
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


@functools.cache
def _fingerprint() -> str:
    return code_fingerprint()


def memo_file() -> Path:
    """The memo file of this code version."""
    return cache_dir() / f"checked-settings-{_fingerprint()[:20]}.json"


def _key(engine_class: str, defaults: dict[str, Any]) -> str | None:
    if not engine_class.startswith(f"{__package__}."):
        return None
    try:
        return json.dumps([engine_class, defaults], sort_keys=True, allow_nan=False)
    except (TypeError, ValueError):  # a YAML value JSON cannot hold exactly (a date, NaN): always checked
        return None


def _read(path: Path) -> dict[str, Any]:
    try:
        memo = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def remembered(engine_class: str, defaults: dict[str, Any]) -> dict[str, Any] | None:
    """The effective settings of an earlier successful check of exactly these, or None."""
    key = _key(engine_class, defaults)
    if key is None:
        return None
    settings = _read(memo_file()).get(key)
    return settings if isinstance(settings, dict) else None


def remember(engine_class: str, defaults: dict[str, Any], settings: dict[str, Any]) -> None:
    """Record a successful check (best effort: a read-only disk only means checking again next time)."""
    key = _key(engine_class, defaults)
    if key is None:
        return
    path = memo_file()
    memo = _read(path)
    if memo.get(key) == settings:
        return
    memo[key] = settings
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8") as out:
            json.dump(memo, out)
        os.replace(out.name, path)
        others = sorted(path.parent.glob("checked-settings-*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in others[KEEP_FILES + 1 :]:
            old.unlink(missing_ok=True)
    except OSError as exc:
        log.info("could not remember checked settings in %s: %s", path, exc)
