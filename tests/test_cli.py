"""``python -m speechlm_demo engines``: table, JSON and simulated hosts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "speechlm_demo", *args], cwd=REPO, capture_output=True, text=True, timeout=120)


def test_engines_json_on_simulated_hosts(data_dir: Path) -> None:
    catalog = str(data_dir / "catalog_hosts.yaml")
    cpu = {e["id"]: e for e in json.loads(cli("engines", "--json", "--host", "cpu", "--catalog", catalog).stdout)}
    h100 = {e["id"]: e for e in json.loads(cli("engines", "--json", "--host", "cuda:80", "--catalog", catalog).stdout)}
    assert set(cpu["echo"]) >= {"id", "available", "reason"}
    assert not cpu["big-cuda"]["available"] and h100["big-cuda"]["available"]
    assert h100["big-cuda"]["device"] == "cuda:0"


def test_engines_table_and_markdown() -> None:
    table = cli("engines")
    assert table.returncode == 0 and "echo" in table.stdout and "available" in table.stdout
    markdown = cli("engines", "--markdown", "--host", "rocm:192")
    assert "| id | engine |" in markdown.stdout


def test_bad_host_spec_is_a_clear_error() -> None:
    out = cli("engines", "--host", "cuda:lots")
    assert out.returncode == 2 and "not a number" in out.stderr and "Traceback" not in out.stderr
