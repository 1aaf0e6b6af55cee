"""Which code a catalogue may make the app import, and module checks that import nothing.

A catalogue entry's ``class: module:Class`` is imported to build the engine; importing runs the module's
code. So a class is only ever imported from the project's engine package (:data:`ENGINE_PACKAGE`) or from
a package the catalogue itself lists under ``engine_packages``; anything else is refused before any
import. ``requires.python`` entries are looked up with :func:`module_available`, which finds a module
(dotted names too) without importing it or its parent packages.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import sys
from collections.abc import Sequence

ENGINE_PACKAGE = "speechlm_demo.engines"


def dotted_name(name: str) -> bool:
    """Whether ``name`` is a plain dotted module name (``a.b.c``; no leading dot, no empty part)."""
    return bool(name) and all(part.isidentifier() for part in name.split("."))


def class_refusal(path: str, engine_packages: Sequence[str] = ()) -> str | None:
    """Why ``path`` (``module:Class``) may not be imported, or None if it may.

    Allowed: :data:`ENGINE_PACKAGE` and its submodules, and the packages in ``engine_packages``.
    """
    module, _, class_name = path.partition(":")
    if not dotted_name(module) or not class_name.isidentifier():
        return f"{path!r} is not of the form package.module:Class"
    allowed = (ENGINE_PACKAGE, *engine_packages)
    if any(module == package or module.startswith(package + ".") for package in allowed):
        return None
    return (
        f"module {module!r} is outside the engine packages ({', '.join(allowed)}); "
        "list its package under the catalogue's engine_packages to allow it"
    )


def module_available(name: str) -> bool:
    """Whether module ``name`` can be found, without importing it or any parent package.

    ``importlib.util.find_spec("a.b")`` imports ``a`` to find ``b``; this walks the parent's search path
    instead. A module already imported counts as available.
    """
    if not dotted_name(name):
        return False
    if name in sys.modules:
        return sys.modules[name] is not None
    first, *rest = name.split(".")
    try:
        spec = importlib.util.find_spec(first)  # a top-level name: nothing is imported to find it
        for part in rest:
            locations = spec.submodule_search_locations if spec is not None else None
            if not locations:
                return False
            spec = importlib.machinery.PathFinder.find_spec(part, list(locations))
    except (ImportError, ValueError):
        return False
    return spec is not None
