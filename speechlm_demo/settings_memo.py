"""Settings the catalogue has already checked, remembered on disk so that loading it imports no engine module.

Checking an entry's ``defaults`` against its engine class's typed ``Settings`` imports the class's module, and
engine modules import their clients (httpx, aiohttp, onnxruntime, ...): about half a second at every start. A
successful check depends only on the entry's class and defaults and on the code that module runs, so its result
is remembered under exactly those: the class and defaults as JSON, with a hash of each source file of this
package that the class's module may run when imported (:func:`source_closure`: its file, its parent packages'
``__init__.py`` and, transitively, every package module it imports anywhere in its text, lazy imports included).
A start checks only those files (each hashed at most once per process), so a change to one of them, or another
default, misses and is checked by import again, while editing the UI does not. The file is named by the Python
and pydantic versions and this checkout's path. A failed check is never remembered, so a wrong setting always
stops the app; classes outside this package are always checked by import. The files live in ``$SPEECHLM_CACHE``
(default ``~/.cache/speechlm_demo``); when they cannot be read or written, the check simply runs.
"""

from __future__ import annotations

import ast
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

log = logging.getLogger(__name__)

PACKAGE = Path(__file__).resolve().parent
CACHE_ENV = "SPEECHLM_CACHE"
KEEP_FILES = 8  # memo files of other versions and checkouts kept besides this one


def _module_file(module: str, root: Path) -> Path | None:
    """The source of ``module`` (a dotted name under ``root``'s package), or None when it is not one."""
    parts = module.split(".")
    if parts[0] != root.name:
        return None
    base = root.joinpath(*parts[1:])
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


@functools.cache
def _imported(module: str, path: Path, root: Path) -> frozenset[str]:
    """Dotted names of the package's modules that ``path`` (the source of ``module``) imports anywhere (parsed
    once per process: only a check by import, the slow path, asks)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # ``from . import module``
    return frozenset(name for name in names if name.split(".")[0] == root.name)


def source_closure(module: str, root: Path | None = None) -> list[Path]:
    """Every source file under ``root`` (default: this package) that importing ``module`` may run, sorted (see
    the module docstring)."""
    root = root or PACKAGE
    found: dict[str, Path] = {}
    todo = [module]
    while todo:
        name = todo.pop()
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            prefix = ".".join(parts[:depth])
            path = _module_file(prefix, root)
            if prefix in found or path is None:
                continue
            found[prefix] = path
            todo.extend(_imported(prefix, path, root))
    return sorted(set(found.values()))


@functools.cache
def _digest(path: Path) -> str:
    """The hash of one source file, read once per process."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _sources(engine_class: str) -> dict[str, str]:
    """Source files the class's module may run, relative to the package, with their hashes."""
    module = engine_class.partition(":")[0]
    return {path.relative_to(PACKAGE).as_posix(): _digest(path) for path in source_closure(module)}


def _unchanged(sources: object) -> bool:
    """Whether every recorded source file still has its recorded hash."""
    if not isinstance(sources, dict) or not sources:
        return False
    try:
        return all(_digest(PACKAGE / relative) == digest for relative, digest in sources.items())
    except OSError:  # a file gone since
        return False


def memo_file() -> Path:
    """The memo file of this Python, pydantic and checkout."""
    directory = Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "speechlm_demo").expanduser()
    name = hashlib.sha256(f"{platform.python_version()} {pydantic.VERSION} {PACKAGE}".encode()).hexdigest()
    return directory / f"checked-settings-{name[:20]}.json"


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
    memo = _read(memo_file()).get(key)
    if not isinstance(memo, dict) or not isinstance(memo.get("settings"), dict) or not _unchanged(memo.get("sources")):
        return None
    return memo["settings"]


def remember(engine_class: str, defaults: dict[str, Any], settings: dict[str, Any]) -> None:
    """Record a successful check (best effort: a read-only disk only means checking again next time)."""
    key = _key(engine_class, defaults)
    if key is None:
        return
    path = memo_file()
    memo = _read(path)
    try:
        record = {"settings": settings, "sources": _sources(engine_class)}
    except (OSError, SyntaxError, ValueError) as exc:  # a source that cannot be read or parsed: not remembered
        log.info("not remembering the settings of %s: %s", engine_class, exc)
        return
    if memo.get(key) == record:
        return
    memo[key] = record
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
