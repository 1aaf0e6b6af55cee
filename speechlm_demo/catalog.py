"""The engine catalogue: read ``configs/engines.yaml`` (validated) and decide what this host offers.

Each entry's ``defaults`` are checked against its engine class's typed ``Settings`` when the catalogue loads
(the class's module is imported for that, unless a package it requires is missing here, or the very same
check already passed with this code: :mod:`.settings_memo`; the engine checks them again when it is built). The decision "offered here or not, and why" is data: each entry lists the accelerators it supports
(``supported`` or ``experimental``), its minimum GPU memory, the Python modules and environment
variables it needs. :func:`decide` reads those fields; no engine gets an if-branch of its own.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from .class_policy import class_refusal, dotted_name, module_available
from .env_settings import env_flag
from .hardware import HostInfo
from .settings_memo import remember, remembered

log = logging.getLogger(__name__)

MAX_WEIGHT = 1000.0  # a catalogue weight's ceiling: relative weights need no more, and sums of them stay finite
DEFAULT_CATALOG = Path(__file__).resolve().parent.parent / "configs" / "engines.yaml"
CATALOG_ENV = "SPEECHLM_CATALOG"
EXPERIMENTAL_ENV = "SPEECHLM_EXPERIMENTAL"
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml's when built in: ~10x faster

Family = Literal["speechlm", "hybrid", "cascade", "diagnostic"]
Support = Literal["supported", "experimental"]
AcceleratorName = Literal["cuda", "rocm", "mps", "cpu"]


class CatalogError(ValueError):
    """A catalogue file that cannot be used; the message names the file, the entry and the field."""


class Requirements(BaseModel):
    """What must be present on the host besides an accelerator."""

    model_config = ConfigDict(extra="forbid")

    python: list[str] = Field(default_factory=list, description="importable modules")
    env: list[str] = Field(default_factory=list, description="environment variables that must be set")
    commands: list[str] = Field(default_factory=list, description="programs that must be on PATH")
    hint: str = Field("", description="how to get what is missing")


class SampleRates(BaseModel):
    """Audio rates the engine consumes and produces."""

    model_config = ConfigDict(extra="forbid")

    input: int = Field(16_000, ge=4_000, le=192_000)
    output: int = Field(16_000, ge=4_000, le=192_000)


class EngineEntry(BaseModel):
    """One engine of the catalogue; its numbers are finite (no ``.inf`` / ``.nan``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, allow_inf_nan=False)

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    label: str = Field(min_length=1)
    family: Family
    duplex: Literal["full", "half"]
    engine_class: str = Field(alias="class", pattern=r"^[\w.]+:\w+$")
    sample_rates: SampleRates = Field(default_factory=SampleRates)
    accelerators: dict[AcceleratorName, Support] = Field(min_length=1)
    min_vram_gb: float = Field(0.0, ge=0)
    licence: str = Field(min_length=1)
    model_ids: list[str] = Field(default_factory=list)
    requires: Requirements = Field(default_factory=Requirements)
    defaults: dict[str, Any] = Field(default_factory=dict)
    weight: float = Field(1.0, ge=0, le=MAX_WEIGHT, description="sampling weight for blind A/B pairs")
    identity_names: list[str] = Field(
        default_factory=list, description="engine, model and company names that unblind a vote when a reply says them"
    )
    note: str = ""
    _settings: dict[str, Any] | None = PrivateAttr(default=None)

    @property
    def effective_settings(self) -> dict[str, Any] | None:
        """``defaults`` validated by the engine class's ``Settings``, every default filled in (None if unchecked)."""
        return self._settings

    @field_validator("identity_names")
    @classmethod
    def _names_are_words(cls, names: list[str]) -> list[str]:
        seen: set[str] = set()
        for name in names:
            if not any(ch.isalnum() for ch in name) or name != name.strip() or len(name) > 64:
                raise ValueError(f"identity name {name!r} must be a word or words (letters/digits, no outer spaces, at most 64 characters)")
            if name.lower() in seen:
                raise ValueError(f"identity name {name!r} is listed twice")
            seen.add(name.lower())
        return names

    @field_validator("accelerators", mode="before")
    @classmethod
    def _list_means_supported(cls, value: Any) -> Any:
        if isinstance(value, list):
            return {name: "supported" for name in value}
        return value


class Catalog(BaseModel):
    """The whole catalogue file."""

    model_config = ConfigDict(extra="forbid")

    default_engine: str
    engine_packages: list[str] = Field(
        default_factory=list, description="packages besides speechlm_demo.engines whose engine classes entries may name"
    )
    engines: list[EngineEntry] = Field(min_length=1)

    @model_validator(mode="after")
    def _ids_unique_and_default_known(self) -> Catalog:
        seen: set[str] = set()
        for entry in self.engines:
            if entry.id in seen:
                raise ValueError(f"engine id {entry.id!r} appears twice")
            seen.add(entry.id)
        if self.default_engine not in seen:
            raise ValueError(f"default_engine {self.default_engine!r} is not an engine id")
        for package in self.engine_packages:
            if not dotted_name(package):
                raise ValueError(f"engine_packages: {package!r} is not a package name")
        for entry in self.engines:
            refusal = class_refusal(entry.engine_class, self.engine_packages)
            if refusal:
                raise ValueError(f"entry {entry.id!r}, field class: {refusal}")
        problem = fallback_problem(self.engines)
        if problem:
            raise ValueError(problem)
        return self

    def get(self, engine_id: str) -> EngineEntry:
        """The entry with this id, or KeyError naming the known ids."""
        for entry in self.engines:
            if entry.id == engine_id:
                return entry
        raise KeyError(f"unknown engine {engine_id!r}; known: {', '.join(e.id for e in self.engines)}")


def fallback_problem(engines: list[EngineEntry]) -> str | None:
    """Why the entries' ``defaults.fallback`` cannot work (an unknown id, the entry itself, a cycle), or None.

    A server engine loads its fallback while it holds its own load lock: fallbacks that lead back to an engine
    already on the way would wait for each other for ever."""
    ids = {entry.id for entry in engines}
    follows: dict[str, str] = {}
    for entry in engines:
        target = entry.defaults.get("fallback")
        if not isinstance(target, str):
            continue  # none (null), or a wrong type the engine's Settings refuse
        where = f"entry {entry.id!r}, field defaults.fallback"
        if target == entry.id:
            return f"{where}: an engine cannot be its own fallback"
        if target not in ids:
            return f"{where}: {target!r} is not an engine id of this catalogue"
        follows[entry.id] = target
    for start in follows:
        path = [start]
        while path[-1] in follows:
            path.append(follows[path[-1]])
            if path[-1] in path[:-1]:
                cycle = path[path.index(path[-1]):]
                if cycle[0] == start:
                    return f"entry {start!r}, field defaults.fallback: the fallbacks go round in a circle ({' -> '.join(cycle)})"
                break  # a cycle further on: reported when the loop starts at one of its own entries
    return None


def load_catalog(path: str | os.PathLike[str] | None = None) -> Catalog:
    """Read and validate a catalogue file (default: ``$SPEECHLM_CATALOG`` or ``configs/engines.yaml``)."""
    file = Path(path or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG)
    try:
        raw = yaml.load(file.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
    except OSError as exc:
        raise CatalogError(f"{file}: cannot read catalogue: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise CatalogError(f"{file}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); save the catalogue as UTF-8") from None
    except yaml.YAMLError as exc:
        raise CatalogError(f"{file}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise CatalogError(f"{file}: expected a mapping with 'default_engine' and 'engines'")
    try:
        catalog = Catalog.model_validate(raw)
    except ValidationError as exc:
        raise CatalogError(_describe_validation_error(file, raw, exc)) from None
    problems = [f"  entry {entry.id!r}, {line}" for entry in catalog.engines for line in check_settings(entry)]
    if problems:
        raise CatalogError("\n".join([f"{file}: invalid catalogue", *problems]))
    return catalog


def check_settings(entry: EngineEntry) -> list[str]:
    """Validate ``entry.defaults`` against its engine class's ``Settings``; returns the problems found.

    On success the entry remembers its effective settings. An engine whose module cannot be imported here
    (a package it requires is missing) is left unchecked: it is not offered on this host anyway. A module not
    imported yet is not imported when this code already passed this very check (:mod:`.settings_memo`).
    """
    from .engines.base import Engine, describe_settings_error

    if not all(module_available(module) for module in entry.requires.python):
        return []
    module_name, _, class_name = entry.engine_class.partition(":")  # allowed: the Catalog checked it (class_policy)
    if module_name not in sys.modules:  # an imported class is checked as it is now (cheap; tests patch classes)
        settings = remembered(entry.engine_class, entry.defaults)
        if settings is not None:
            entry._settings = settings
            return []
    try:
        cls = getattr(importlib.import_module(module_name), class_name, None)
    except Exception as exc:  # noqa: BLE001 - reported when the engine is built; the catalogue stays usable
        log.warning("cannot import %s to check the settings of %s: %s", module_name, entry.id, exc)
        return []
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        return [f"field class: {entry.engine_class} is not an Engine class"]
    try:
        entry._settings = cls.Settings.model_validate(entry.defaults).model_dump(mode="json")
    except ValidationError as exc:
        return describe_settings_error(exc)
    remember(entry.engine_class, entry.defaults, entry._settings)
    return []


def _describe_validation_error(file: Path, raw: dict, exc: ValidationError) -> str:
    lines = [f"{file}: invalid catalogue"]
    engines = raw.get("engines") if isinstance(raw.get("engines"), list) else []
    for error in exc.errors():
        loc = list(error["loc"])
        if not loc and error["type"] == "value_error":  # the Catalog's own checks name the entry and field
            message = str(error.get("ctx", {}).get("error") or error["msg"])
            lines.append(f"  {message}" if message.startswith("entry ") else f"  top level: {message}")
            continue
        where = "top level"
        if len(loc) >= 2 and loc[0] == "engines" and isinstance(loc[1], int):
            item = engines[loc[1]] if loc[1] < len(engines) else None
            name = item.get("id") if isinstance(item, dict) else None
            where = f"entry {name!r}" if name else f"entry #{loc[1] + 1}"
            loc = loc[2:]
        field = ".".join(str(part) for part in loc) or "(entry)"
        lines.append(f"  {where}, field {field}: {error['msg']}")
    return "\n".join(lines)


@dataclass(frozen=True)
class Availability:
    """Whether an engine is offered on a host, where it would run, and why (not)."""

    entry: EngineEntry
    available: bool
    reason: str
    device: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (used by ``engines --json``)."""
        return {
            "id": self.entry.id,
            "label": self.entry.label,
            "family": self.entry.family,
            "duplex": self.entry.duplex,
            "accelerators": dict(self.entry.accelerators),
            "min_vram_gb": self.entry.min_vram_gb,
            "licence": self.entry.licence,
            "available": self.available,
            "device": self.device,
            "reason": self.reason,
            "settings": self.entry.effective_settings,
        }


def experimental_enabled() -> bool:
    """The ``SPEECHLM_EXPERIMENTAL`` switch: offer engines on accelerators marked experimental."""
    return env_flag(EXPERIMENTAL_ENV, False)


def _configured(name: str, entry: EngineEntry, environ: Mapping[str, str]) -> bool:
    """Whether the required variable ``name`` is set (not blank), or stands for a server URL (the entry's
    ``url_env``) that the catalogue's own ``defaults.url`` gives."""
    if (environ.get(name) or "").strip():
        return True
    settings = entry.effective_settings or entry.defaults
    return name == settings.get("url_env") and bool(str(entry.defaults.get("url") or "").strip())


def decide(
    entry: EngineEntry,
    host: HostInfo,
    *,
    allow_experimental: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Availability:
    """Decide whether ``entry`` can run on ``host``; the reason is written for users."""
    environ = os.environ if environ is None else environ
    missing_modules = [m for m in entry.requires.python if not module_available(m)]
    missing_env = [name for name in entry.requires.env if not _configured(name, entry, environ)]
    missing_commands = [c for c in entry.requires.commands if shutil.which(c) is None]
    if missing_modules or missing_env or missing_commands:
        parts = []
        if missing_modules:
            parts.append("missing Python package(s): " + ", ".join(missing_modules))
        if missing_commands:
            parts.append("missing program(s): " + ", ".join(missing_commands))
        if missing_env:
            parts.append("set " + ", ".join(missing_env))
        hint = f" ({entry.requires.hint})" if entry.requires.hint else ""
        return Availability(entry, False, "; ".join(parts) + hint)

    # A GPU host can also run CPU engines; try the host's accelerator first.
    candidates = [host.accelerator] + (["cpu"] if host.accelerator != "cpu" else [])
    refusals: list[str] = []
    for accel in candidates:
        level = entry.accelerators.get(accel)  # type: ignore[call-overload]
        if level is None:
            refusals.append(f"does not run on {accel.upper() if accel != 'cpu' else 'CPU'}")
            continue
        if level == "experimental" and not allow_experimental:
            refusals.append(f"{accel.upper()} support is experimental (set {EXPERIMENTAL_ENV}=1 to try it)")
            continue
        device = accel
        if accel != "cpu":
            gpu = host.device_with(entry.min_vram_gb) if host.devices else None
            if gpu is None and entry.min_vram_gb > 0:
                refusals.append(_memory_refusal(entry.min_vram_gb, host))
                continue
            device = f"{accel}:{gpu.index if gpu else 0}"
        note = " (experimental)" if level == "experimental" else ""
        return Availability(entry, True, f"available on {device}{note}", device)
    return Availability(entry, False, "; ".join(dict.fromkeys(refusals)))


def _memory_refusal(min_gb: float, host: HostInfo) -> str:
    """Why no GPU of ``host`` has ``min_gb``. A device reporting a little less still counts (:func:`has_memory`),
    so a refused one has less than ``min_gb`` however it is counted."""
    which = "this GPU has" if len(host.devices) <= 1 else f"the largest of its {len(host.devices)} GPUs has"
    return f"needs {min_gb:g} GB of GPU memory, {which} {host.vram_gb:g} GB"


def offered(
    catalog: Catalog, host: HostInfo, *, allow_experimental: bool | None = None
) -> list[Availability]:
    """The decision for every entry, in catalogue order."""
    allow = experimental_enabled() if allow_experimental is None else allow_experimental
    return [decide(entry, host, allow_experimental=allow) for entry in catalog.engines]


def engine_table_rows(availabilities: Iterable[Availability]) -> list[dict[str, str]]:
    """Rows for the engine table (CLI, Engines tab, README): one per entry, status last."""
    rows = []
    for a in availabilities:
        e = a.entry
        accelerators = ", ".join(
            name.upper() if level == "supported" else f"{name.upper()} (experimental)"
            for name, level in e.accelerators.items()
        )
        rows.append(
            {
                "id": e.id,
                "engine": e.label,
                "family": e.family,
                "duplex": e.duplex,
                "runs on": accelerators,
                "min VRAM": f"{e.min_vram_gb:g} GB" if e.min_vram_gb else "-",
                "licence": e.licence,
                "status": "available" if a.available else f"not available: {a.reason}",
            }
        )
    return rows
