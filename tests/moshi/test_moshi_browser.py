"""A full-duplex engine in the Talk tab: headless Chromium talks to a tiny random-weight Moshi over WebRTC.

The tiny model babbles, so the test asserts what the transport must deliver for any full-duplex engine:
non-silent agent audio in the page while the microphone is live, and a per-turn timeline in the status.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from tests.conftest import require
from tests.support.netns import loopback_namespace_problem, run_python_in_loopback_namespace
from tests.support.speech import espeak_available, padded_clip


@pytest.mark.browser
@pytest.mark.slow
def test_chromium_talks_to_a_full_duplex_engine(tiny_checkpoint: dict[str, str], tmp_path: Path) -> None:
    require(None if shutil.which("chromium") or os.path.exists("/usr/bin/chromium") else "Chromium is not installed")
    require(loopback_namespace_problem())
    require(None if espeak_available() else "espeak-ng is not installed")
    catalog = tmp_path / "engines.yaml"
    entry = {
        "id": "moshi-tiny", "label": "Moshi (tiny random weights)", "family": "speechlm", "duplex": "full",
        "class": "speechlm_demo.engines.moshi.local:MoshiEngine", "sample_rates": {"input": 24000, "output": 24000},
        "accelerators": ["cpu"], "licence": "CC-BY-4.0",
        "defaults": {"dtype": "float32", "top_k": 50, "end_silence_ms": 400, "reply_timeout_s": 3, **tiny_checkpoint},
    }
    catalog.write_text(yaml.safe_dump({"default_engine": "moshi-tiny", "engines": [entry]}))
    clip = padded_clip(tmp_path / "turn.wav", "What is the capital of France?", before_s=1.0, after_s=14.0)
    run = run_python_in_loopback_namespace(
        ["-m", "tests.support.browser_check", "--wav", clip["path"], "--engine", "moshi-tiny", "--catalog", str(catalog)],
        timeout=300,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    print(f"Chromium page with tiny Moshi: status {result['status']!r}, remote max {result['remote_max_dbfs']:.0f} dBFS")
    assert result["probe_errors"] == []
    assert result["remote_max_dbfs"] > -40, result  # the agent's audio reached the page
    assert "Turn 1" in result["status"], result  # the user's turn got its timeline
