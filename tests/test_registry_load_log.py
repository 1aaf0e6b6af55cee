"""How the registry logs an engine that fails to load: a reason is one ERROR line, a bug keeps its traceback."""

from __future__ import annotations

import logging

import pytest

from speechlm_demo.engines.base import EngineError
from tests.engines_for_tests import engine_entry, registry_of

LOGGER = "speechlm_demo.engines.registry"


def failed_load(caplog: pytest.LogCaptureFixture, engine_class: str) -> tuple[str, list[logging.LogRecord]]:
    """Load a failing engine; the message the UI gets and the registry's log records."""
    registry = registry_of(engine_entry("failing", "Failing", engine_class))
    with caplog.at_level(logging.DEBUG, logger=LOGGER), pytest.raises(EngineError) as failed:
        registry.get("failing")
    assert registry.state("failing").status == "failed"
    return str(failed.value), [r for r in caplog.records if r.name == LOGGER]


def test_an_engine_error_is_one_error_line_and_its_traceback_is_debug(caplog: pytest.LogCaptureFixture) -> None:
    message, records = failed_load(caplog, "RefusedLoadEngine")
    reason = "the model server at http://127.0.0.1:9 is unreachable"
    assert message == f"Failing failed to load: {reason}"
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert [r.getMessage() for r in errors] == [f"loading failing failed: {reason}"]
    assert errors[0].exc_info is None, "a reason needs no traceback at ERROR"
    debug = [r for r in records if r.levelno == logging.DEBUG and r.exc_info]
    assert len(debug) == 1 and isinstance(debug[0].exc_info[1], EngineError)  # type: ignore[index]


def test_an_unexpected_exception_keeps_its_traceback_at_error(caplog: pytest.LogCaptureFixture) -> None:
    message, records = failed_load(caplog, "BrokenLoadEngine")
    assert message == "Failing failed to load: 'n_layers'"
    errors = [r for r in records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and errors[0].exc_info is not None
    assert isinstance(errors[0].exc_info[1], KeyError)
    assert "Traceback" in caplog.text and "KeyError: 'n_layers'" in caplog.text
