"""The README's engine table is the one the CLI generates from the catalogue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_engine_table_in_readme_is_generated_from_the_catalogue() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "engines", "--markdown", "--host", "cpu"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=True,
    ).stdout
    generated = out[out.index("| id |"):].strip()
    readme = (REPO / "README.md").read_text()
    in_readme = readme.split("<!-- engines:start -->")[1].split("<!-- engines:end -->")[0].strip()
    assert in_readme == generated, "README engine table is stale: regenerate it with the command above it"
