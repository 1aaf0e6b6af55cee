"""Catalogue decisions for the server-backed rows of issue 15 on cpu / cuda:24 / cuda:80 / rocm:192 hosts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from speechlm_demo import catalog as catalog_module
from speechlm_demo.catalog import decide, load_catalog
from speechlm_demo.engines.registry import engine_class
from speechlm_demo.hardware import simulated_host

REPO = Path(__file__).resolve().parents[2]
OMNI = ("qwen2.5-omni-vllm", "qwen2.5-omni-3b-vllm", "qwen3-omni-vllm", "qwen3-omni-vllm-realtime")
HYBRID = ("ultravox-vllm", "qwen2-audio-vllm", "vllm-audio-llm")
URLS = {"VLLM_OMNI_URL": "http://gpu:8091", "VLLM_URL": "http://gpu:8000", "OLLAMA_URL": "http://127.0.0.1:11434/v1"}


@pytest.fixture
def installed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Decide as if every Python package the rows name were installed (the hardware is what is tested)."""
    monkeypatch.setattr(catalog_module, "module_available", lambda module: True)


def decisions(host: str, environ: dict[str, str]) -> dict[str, tuple[bool, str]]:
    cat = load_catalog()
    return {e.id: (a.available, a.reason) for e in cat.engines for a in [decide(e, simulated_host(host), environ=environ)]}


@pytest.mark.parametrize("host, device", [("cpu", "cpu"), ("cuda:24", "cuda:0"), ("cuda:80", "cuda:0"), ("rocm:192", "rocm:0")])
def test_remote_rows_are_offered_on_any_host_once_their_url_is_set(installed: None, host: str, device: str) -> None:
    without = decisions(host, {})
    for engine_id in OMNI:
        available, reason = without[engine_id]
        assert not available and reason.startswith("set VLLM_OMNI_URL (") and "vLLM-Omni 0.30" in reason
    for engine_id in HYBRID:
        assert without[engine_id][0] is False and without[engine_id][1].startswith("set VLLM_URL (")
    assert without["cascade-ollama"] == (False, "set OLLAMA_URL (ollama serve && ollama pull llama3.2:3b, then OLLAMA_URL=http://127.0.0.1:11434/v1)")
    with_urls = decisions(host, URLS)
    for engine_id in (*OMNI, *HYBRID):
        assert with_urls[engine_id] == (True, f"available on {device}")
    assert with_urls["cascade-ollama"] == (True, "available on cpu")  # Whisper base + Piper stay on the CPU


@pytest.mark.parametrize(
    "host, expected",
    [
        ("cpu", (False, "does not run on CPU")),
        ("cuda:2", (False, "needs 4 GB of GPU memory, this GPU has 2 GB; does not run on CPU")),
        ("cuda:24", (True, "available on cuda:0")),
        ("cuda:80", (True, "available on cuda:0")),
        ("rocm:192", (False, "does not run on ROCM; does not run on CPU")),
    ],
)
def test_gpu_cascade_needs_cuda(installed: None, host: str, expected: tuple[bool, str]) -> None:
    assert decisions(host, URLS)["cascade-gpu-vllm"] == expected


def test_every_new_row_validates_its_settings() -> None:
    cat = load_catalog()
    for engine_id in (*OMNI, *HYBRID):
        entry = cat.get(engine_id)
        cls = engine_class(entry.engine_class)
        settings = cls.Settings.model_validate(entry.defaults)
        assert settings.model == (entry.model_ids[0] if entry.model_ids else "auto")
    omni = cat.get("qwen2.5-omni-vllm")
    voices = engine_class(omni.engine_class).Settings.model_validate(omni.defaults)
    assert voices.voices == ["Chelsie", "Ethan"] and voices.speaker == "Chelsie"


def test_engines_cli_on_a_rocm_192_host() -> None:
    env = {k: v for k, v in os.environ.items() if k not in URLS}
    run = subprocess.run([sys.executable, "-m", "speechlm_demo", "engines", "--host", "rocm:192", "--json"], cwd=REPO, env=env, check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    rows = {r["id"]: r for r in json.loads(run.stdout)}
    assert rows["qwen2.5-omni-vllm"]["reason"].startswith("set VLLM_OMNI_URL")
    assert "deploy/compose.rocm.yaml" in rows["qwen2.5-omni-vllm"]["reason"]
    assert all(r["reason"] for r in rows.values() if not r["available"])  # every refusal says why
    env["VLLM_OMNI_URL"] = "http://127.0.0.1:8091"
    run = subprocess.run([sys.executable, "-m", "speechlm_demo", "engines", "--host", "rocm:192", "--json"], cwd=REPO, env=env, check=False, capture_output=True, text=True, timeout=120)
    rows = {r["id"]: r for r in json.loads(run.stdout)}
    for engine_id in OMNI[:3]:
        assert rows[engine_id]["available"] and rows[engine_id]["device"] == "rocm:0"


@pytest.mark.parametrize("name, image", [("compose.cuda.yaml", "vllm/vllm-omni:"), ("compose.rocm.yaml", "vllm/vllm-omni-rocm:")])
def test_deploy_files_start_the_app_beside_the_vendor_server(name: str, image: str) -> None:
    import yaml

    services = yaml.safe_load((REPO / "deploy" / name).read_text())["services"]
    server, app = services["vllm-omni"], services["app"]
    assert server["image"].startswith(image) and "8091" in server["command"]
    assert app["environment"]["VLLM_OMNI_URL"] == "http://127.0.0.1:8091" and app["depends_on"]["vllm-omni"]["condition"] == "service_healthy"
    assert app["build"]["args"]["REQUIREMENTS"] == f"requirements-{name.split('.')[1]}.txt"
    assert (REPO / app["build"]["args"]["REQUIREMENTS"]).is_file()
