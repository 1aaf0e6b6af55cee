"""What the browser tests share on the pytest side: their requirements, running a check script in the
loopback namespace and reading its JSON line, and what a Compare turn answered by both sides shows."""

from __future__ import annotations

import json
import os
import shutil

from tests.conftest import require
from tests.support.netns import loopback_namespace_problem, run_python_in_loopback_namespace
from tests.support.speech import espeak_available


def require_browser() -> None:
    """Skip (or fail in CI, as :func:`tests.conftest.require` decides) without espeak-ng, Chromium or netns."""
    require(None if espeak_available() else "espeak-ng is not installed (apt-get install espeak-ng)")
    require(None if shutil.which("chromium") or os.path.exists("/usr/bin/chromium") else "Chromium is not installed (apt-get install chromium)")
    require(loopback_namespace_problem())


def last_json_line(stdout: str) -> dict:
    """The last line of ``stdout`` that is a JSON object (what a check script printed)."""
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise AssertionError("no JSON result printed")


def run_check(args: list[str], timeout: float = 300) -> dict:
    """``python ARGS`` in the loopback namespace; it must succeed; its JSON result line."""
    run = run_python_in_loopback_namespace(args, timeout=timeout)
    assert run.returncode == 0, run.stderr[-4000:]
    return last_json_line(run.stdout)


def assert_compare_answered(result: dict) -> None:
    """The Compare tab finished and both sides show a voice-to-voice time and their reply audio."""
    print(f"Compare tab: {result['summary_a']} | {result['summary_b']}")
    assert result["status"].startswith("Done"), result
    for side in "ab":
        assert "✅" in result[f"summary_{side}"] and "voice-to-voice" in result[f"summary_{side}"], result
        assert result[f"has_audio_{side}"], result
    judges = result["judges"]  # both replies scored, and no "null" cell (a missing score reads "–")
    assert "duration (s)" in judges and "null" not in judges and "processing" not in judges, judges
