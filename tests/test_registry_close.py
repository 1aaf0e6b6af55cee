"""Closing the registry (the app's shutdown): loaded engines are released once, one still loading is left to its
loader, and nothing loads afterwards."""

from __future__ import annotations

import logging

import pytest

from speechlm_demo.engines.base import EngineError
from tests.engines_for_tests import ClosingEngine, GatedLoadEngine, engine_entry, registry_of

LOGGER = "speechlm_demo.engines.registry"


@pytest.fixture
def gate() -> type[GatedLoadEngine]:
    GatedLoadEngine.gate.clear()
    GatedLoadEngine.loading.clear()
    yield GatedLoadEngine
    GatedLoadEngine.gate.set()


def test_close_releases_loaded_engines_once_leaves_a_loading_one_and_loads_nothing_after(
    gate: type[GatedLoadEngine], caplog: pytest.LogCaptureFixture
) -> None:
    registry = registry_of(
        engine_entry("ready", "Ready", "ClosingEngine"), engine_entry("loading", "Loading", "GatedLoadEngine"),
        engine_entry("broken", "Broken", "BrokenLoadEngine"), engine_entry("unused", "Unused"),
    )
    ready = registry.get("ready")
    with pytest.raises(EngineError):
        registry.get("broken")
    loader = registry.preload("loading")
    assert gate.loading.wait(10)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        registry.close()
        registry.close()
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert messages.count("released the engines: ready") == 1  # the one that failed to load is closed, not listed
    assert "loading is still loading: not closed" in messages
    assert isinstance(ready, ClosingEngine) and ready.closes == 1
    gate.gate.set()
    loader.join(10)
    assert registry.state("loading").status == "ready"
    loading = registry._engines["loading"]  # noqa: SLF001 - the loader finished what it had begun
    assert isinstance(loading, GatedLoadEngine) and loading.closes == 0
    for engine_id in ("ready", "unused", "broken"):
        with pytest.raises(EngineError, match="is not loaded: the app is shutting down"):
            registry.get(engine_id)
