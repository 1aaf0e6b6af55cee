"""The app object: builds, serves its health route and UI, and refuses a malformed catalogue clearly."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from speechlm_demo.server import AppConfig, create_api, create_demo, parse_app_args

REPO = Path(__file__).resolve().parents[1]


def test_args_and_gradio_env(monkeypatch) -> None:
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    config = parse_app_args([])
    assert (config.port, config.server_name) == (7999, "0.0.0.0")
    assert parse_app_args(["--engine", "echo", "--port", "8001"]).port == 8001


def test_demo_serves_ui_and_health() -> None:
    config = AppConfig(engine="echo")
    demo, registry = create_demo(config)
    registry.get("echo")
    with TestClient(create_api(demo, registry, "echo")) as client:
        health = client.get("/api/health").json()
        assert health["ready"] is True and health["default"] == "echo" and health["engines"] == {"echo": "ready"}
        page = client.get("/")
        assert page.status_code == 200 and "SpeechLM Playground" in page.text


def test_app_module_exposes_demo() -> None:
    code = "import app, gradio; assert isinstance(app.demo, gradio.Blocks); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr[-2000:]


def test_malformed_catalogue_stops_start_up_with_a_clear_message(tmp_path: Path) -> None:
    bad = tmp_path / "engines.yaml"
    bad.write_text("default_engine: echo\nengines:\n  - id: echo\n    label: Echo\n    family: weird\n")
    out = subprocess.run(
        [sys.executable, "app.py", "--catalog", str(bad), "--port", "1"], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 2
    assert str(bad) in out.stderr and "entry 'echo', field family" in out.stderr
    assert "Traceback" not in out.stderr


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
