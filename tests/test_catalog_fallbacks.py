"""``defaults.fallback`` is checked when the catalogue loads (a known id, not the entry itself, no circle), and the
registry never waits for an engine its own thread is loading; a server's URL counts as set from a non-blank
variable or from the catalogue's ``defaults.url``."""

from __future__ import annotations

import copy
import threading
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

import pytest
import yaml

from speechlm_demo.catalog import DEFAULT_CATALOG, CatalogError, decide, load_catalog
from speechlm_demo.engines.base import EngineError, Progress
from speechlm_demo.hardware import simulated_host
from tests.engines_for_tests import ScriptedEngine, engine_entry, registry_of

BASE = yaml.safe_load(DEFAULT_CATALOG.read_text(encoding="utf-8"))


def _catalog(tmp_path: Path, **defaults: dict[str, Any]) -> Path:
    """The shipped catalogue with these entries' ``defaults`` updated (entry id -> changes)."""
    raw = copy.deepcopy(BASE)
    for e in raw["engines"]:
        e.setdefault("defaults", {}).update(defaults.get(e["id"], {}))
    path = tmp_path / "engines.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def _refusal(path: Path) -> str:
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    return str(info.value)


def test_an_unknown_fallback_is_refused_naming_the_entry_and_the_field(tmp_path: Path) -> None:
    message = _refusal(_catalog(tmp_path, **{"mini-omni": {"fallback": "casade"}}))  # a typo of "cascade"
    assert "entry 'mini-omni', field defaults.fallback: 'casade' is not an engine id" in message
    assert "top level" not in message and "Value error" not in message


def test_an_engine_cannot_be_its_own_fallback(tmp_path: Path) -> None:
    message = _refusal(_catalog(tmp_path, **{"mini-omni": {"fallback": "mini-omni"}}))
    assert "entry 'mini-omni', field defaults.fallback: an engine cannot be its own fallback" in message


def test_fallbacks_in_a_circle_are_refused(tmp_path: Path) -> None:
    """mini-omni -> mini-omni2 -> mini-omni: both servers down, each load waited for the other's for ever."""
    path = _catalog(tmp_path, **{"mini-omni": {"fallback": "mini-omni2"}, "mini-omni2": {"fallback": "mini-omni"}})
    assert "the fallbacks go round in a circle (mini-omni -> mini-omni2 -> mini-omni)" in _refusal(path)
    three = {"mini-omni": {"fallback": "mini-omni2"}, "mini-omni2": {"fallback": "glm-4-voice"}, "glm-4-voice": {"fallback": "mini-omni"}}
    assert "in a circle" in _refusal(_catalog(tmp_path, **three))


def test_a_chain_of_fallbacks_and_none_are_accepted(tmp_path: Path) -> None:
    catalog = load_catalog(_catalog(tmp_path, **{"mini-omni": {"fallback": "mini-omni2"}, "mini-omni2": {"fallback": None}}))
    assert catalog.get("mini-omni").defaults["fallback"] == "mini-omni2"


class NeedsItselfEngine(ScriptedEngine):
    """Asks its registry for itself while it loads (what fallbacks leading back to an engine do)."""

    source: ClassVar[Any] = None

    def _load(self, progress: Progress) -> None:
        type(self).source(self.id)


def test_the_registry_refuses_an_engine_its_own_thread_is_loading_instead_of_waiting_for_ever() -> None:
    registry = registry_of(engine_entry("loop", "Loop", "ScriptedEngine").model_copy(
        update={"engine_class": "tests.test_catalog_fallbacks:NeedsItselfEngine"}))
    import_module("tests.test_catalog_fallbacks").NeedsItselfEngine.source = registry.get  # the class the registry builds
    outcome: list[BaseException | str] = []

    def load() -> None:
        try:
            registry.get("loop")
            outcome.append("loaded")
        except EngineError as exc:
            outcome.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(10)
    assert not worker.is_alive(), "registry.get() waited for a lock its own thread holds"
    assert isinstance(outcome[0], EngineError) and "needed while it is loading" in str(outcome[0])
    assert registry.state("loop").status == "failed"


def test_a_blank_url_variable_is_not_set_and_the_catalogues_url_is(tmp_path: Path) -> None:
    catalog = load_catalog()
    host = simulated_host("cpu")
    blank = decide(catalog.get("mini-omni"), host, environ={"MINI_OMNI_URL": "  "})
    assert not blank.available and "set MINI_OMNI_URL" in blank.reason
    assert decide(catalog.get("mini-omni"), host, environ={"MINI_OMNI_URL": "http://gpu-box:60808"}).available
    with_url = load_catalog(_catalog(tmp_path, **{"mini-omni": {"url": "http://gpu-box:60808"}}))
    assert decide(with_url.get("mini-omni"), host, environ={}).available
    blank_url = load_catalog(_catalog(tmp_path, **{"mini-omni": {"url": " "}}))
    assert not decide(blank_url.get("mini-omni"), host, environ={}).available
