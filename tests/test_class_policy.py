"""Issue 13, item 11: a catalogue cannot make the app import arbitrary modules."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from speechlm_demo.catalog import Catalog, CatalogError, decide, load_catalog
from speechlm_demo.class_policy import class_refusal, module_available
from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.registry import EngineRegistry, engine_class
from speechlm_demo.hardware import HostInfo

CPU = HostInfo(accelerator="cpu")


@pytest.fixture
def planted(tmp_path: Path) -> Iterator[Path]:
    """Modules on sys.path that leave a marker file when imported: ``planted_mod`` and ``planted_pkg.sub``."""
    marker = tmp_path / "imported"
    code = f"open({str(marker)!r}, 'a').write(__name__ + '\\n')\n"
    (tmp_path / "planted_mod.py").write_text(code + "class Engine:\n    pass\n")
    (tmp_path / "planted_pkg").mkdir()
    (tmp_path / "planted_pkg" / "__init__.py").write_text(code)
    (tmp_path / "planted_pkg" / "sub.py").write_text(code)
    sys.path.insert(0, str(tmp_path))
    yield marker
    sys.path.remove(str(tmp_path))
    for name in ("planted_mod", "planted_pkg", "planted_pkg.sub"):
        sys.modules.pop(name, None)


def catalogue(tmp_path: Path, cls: str, *, packages: list[str] | None = None, python: list[str] | None = None) -> Path:
    lines = ["default_engine: x"]
    if packages is not None:
        lines.append(f"engine_packages: {packages}")
    lines += [
        "engines:",
        "  - id: x",
        "    label: X",
        "    family: diagnostic",
        "    duplex: half",
        f"    class: {cls}",
        "    accelerators: [cpu]",
        "    licence: MIT",
    ]
    if python is not None:
        lines.append(f"    requires: {{python: {python}}}")
    path = tmp_path / "catalog.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_class_outside_the_engine_packages_is_refused_before_import(planted: Path, tmp_path: Path) -> None:
    """The probe: ``class: some_module:Class`` imported (ran) the module before checking it was an Engine."""
    with pytest.raises(CatalogError, match=r"entry 'x', field class: module 'planted_mod' is outside the engine packages"):
        load_catalog(catalogue(tmp_path, "planted_mod:Engine"))
    with pytest.raises(CatalogError, match="outside the engine packages"):
        load_catalog(catalogue(tmp_path, "os:system"))
    with pytest.raises(EngineError, match="refused to import planted_mod:Engine"):
        engine_class("planted_mod:Engine")
    assert not planted.exists()


def test_a_package_the_catalogue_allows_is_imported_and_still_checked(planted: Path, tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="field class: planted_mod:Engine is not an Engine class"):
        load_catalog(catalogue(tmp_path, "planted_mod:Engine", packages=["planted_mod"]))
    assert planted.read_text() == "planted_mod\n"  # allowed, so imported (to check its settings)
    catalog = Catalog.model_validate(
        {"default_engine": "x", "engine_packages": ["planted_mod"], "engines": [{"id": "x", "label": "X", "family": "diagnostic",
         "duplex": "half", "class": "planted_mod:Engine", "accelerators": ["cpu"], "licence": "MIT"}]}
    )
    with pytest.raises(EngineError, match="is not an Engine class"):
        EngineRegistry(catalog, CPU).get("x")


@pytest.mark.parametrize(
    ("path", "refused"),
    [
        ("speechlm_demo.engines.echo:EchoEngine", False),
        ("speechlm_demo.engines:Engine", False),
        ("speechlm_demo.enginesx.evil:Engine", True),
        ("speechlm_demo.cli:main", True),
        (".relative:Engine", True),
        ("a..b:Engine", True),
    ],
)
def test_only_the_engine_package_and_its_modules_are_allowed(path: str, refused: bool) -> None:
    assert (class_refusal(path) is not None) is refused


def test_requires_python_is_checked_without_importing(planted: Path, tmp_path: Path) -> None:
    """The probe: a dotted ``requires.python`` entry imported its parent package."""
    assert module_available("planted_pkg.sub") and module_available("planted_pkg")
    assert not module_available("planted_pkg.nope") and not module_available("planted_mod.sub")
    assert not module_available("no_such_package_at_all.sub") and not module_available("bad..name")
    entry = load_catalog(catalogue(tmp_path, "speechlm_demo.engines.echo:EchoEngine", python=["planted_pkg.sub", "planted_pkg.nope"])).engines[0]
    decision = decide(entry, CPU)
    assert not decision.available and "missing Python package(s): planted_pkg.nope" in decision.reason
    assert not planted.exists()
    assert module_available("json.decoder") and module_available("speechlm_demo.engines.echo")
