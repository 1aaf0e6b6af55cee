"""The app object: builds, serves its health route and UI, and refuses a malformed catalogue clearly."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from speechlm_demo.server import AppConfig, create_api, create_demo, create_registry, parse_app_args

REPO = Path(__file__).resolve().parents[1]


def test_args_and_gradio_env(monkeypatch) -> None:
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    config = parse_app_args([])
    assert (config.port, config.server_name) == (7999, "0.0.0.0")
    assert parse_app_args(["--engine", "echo", "--port", "8001"]).port == 8001


def test_demo_serves_ui_and_health_and_its_shutdown_releases_the_engines(caplog: pytest.LogCaptureFixture) -> None:
    config = AppConfig(engine="echo")
    demo, registry = create_demo(config)
    registry.get("echo")
    with caplog.at_level(logging.INFO, logger="speechlm_demo.engines.registry"):
        with TestClient(create_api(demo, registry, "echo")) as client:
            health = client.get("/api/health").json()
            assert health["ready"] is True and health["default"] == "echo" and health["engines"] == {"echo": "ready"}
            page = client.get("/")
            assert page.status_code == 200 and "SpeechLM Playground" in page.text
            assert "released the engines" not in caplog.text
        assert "released the engines: echo" in caplog.text


def test_app_module_exposes_demo_and_exits_cleanly_while_the_default_engine_loads() -> None:
    """Importing ``app`` (as a Space does) builds ``demo`` and starts loading the default engine; a process
    that exits at once waits for that load (before, it aborted now and then: a native loader thread alive at
    teardown, "terminate called without an active exception"). The exit status says it, not stdout:
    llama-cpp-python points sys.stdout and fd 1 at /dev/null while it loads, whatever thread prints."""
    code = "import sys, app, gradio; sys.exit(0 if isinstance(app.demo, gradio.Blocks) else 3)"
    env = {key: value for key, value in os.environ.items() if key != "SPEECHLM_ENGINE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "cascade ready" in out.stderr  # the load finished before the process ended


def test_malformed_catalogue_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "engines.yaml"
    bad.write_text("default_engine: echo\nengines:\n  - id: echo\n    label: Echo\n    family: weird\n")
    out = subprocess.run(
        [sys.executable, "app.py", "--catalog", str(bad), "--port", "1"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert str(bad) in out.stderr and "entry 'echo', field family" in out.stderr
    assert "Traceback" not in out.stderr


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--port", "99999"], "argument --port: 99999 is not a port number (1-65535)"),
        (["--port", "-1"], "argument --port: -1 is not a port number (1-65535)"),
        (["--port", "0"], "argument --port: 0 is not a port number (1-65535)"),
        (["--port", "http"], "argument --port: 'http' is not a port number"),
        (["--simulate-host", "nosuch"], "argument --simulate-host: unknown host 'nosuch'"),
        (["--simulate-host", "cuda:lots"], "argument --simulate-host: host 'cuda:lots': GPU memory 'lots' is not a number"),
    ],
)
def test_a_bad_port_or_simulated_host_is_refused_when_parsed(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        parse_app_args(argv)
    assert stopped.value.code == 2 and message in capsys.readouterr().err


def test_edge_ports_and_a_good_simulated_host_are_accepted() -> None:
    assert parse_app_args(["--port", "1"]).port == 1 and parse_app_args(["--port", "65535"]).port == 65535
    assert parse_app_args(["--simulate-host", "cuda:80"]).simulate_host == "cuda:80"


def test_a_simulated_host_given_in_code_is_refused_without_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        create_registry(AppConfig(simulate_host="nosuch"))
    assert stopped.value.code == 2 and "error: --simulate-host: unknown host 'nosuch'" in capsys.readouterr().err


def test_app_py_with_a_bad_simulated_host_stops_with_a_message() -> None:
    out = subprocess.run(
        [sys.executable, "app.py", "--simulate-host", "nosuch", "--port", "1"], check=False, cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "unknown host 'nosuch'" in out.stderr and "Traceback" not in out.stderr


def test_unknown_preselected_engine_is_refused() -> None:
    out = subprocess.run(
        [sys.executable, "app.py", "--engine", "nope", "--port", "1"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2 and "unknown engine 'nope'" in out.stderr


def test_health_names_only_the_default_engine_and_preload_loads_blind_candidates(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    catalog = REPO / "tests" / "data" / "blind_catalog.yaml"
    monkeypatch.setenv("SPEECHLM_PRELOAD", "blind")
    demo, registry = create_demo(AppConfig(catalog=str(catalog)))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and registry.state("parrot-right").status != "ready":
        time.sleep(0.05)
    assert registry.state("parrot-right").status == "ready"  # preloaded although not the default
    with TestClient(create_api(demo, registry, None)) as client:
        assert client.get("/api/health").json()["engines"] == {"parrot-left": "ready"}
