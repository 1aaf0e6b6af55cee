"""Headless Chromium compares gpt-realtime (against the fake Realtime server) with the offline cascade."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import require
from tests.support.netns import loopback_namespace_problem, run_python_in_loopback_namespace
from tests.support.speech import espeak_available, padded_clip
from tests.test_webrtc import last_json_line


@pytest.mark.browser
def test_chromium_compares_gpt_realtime_and_the_cascade(tmp_path: Path) -> None:
    require(None if espeak_available() else "espeak-ng is not installed (apt-get install espeak-ng)")
    require(None if shutil.which("chromium") or os.path.exists("/usr/bin/chromium") else "Chromium is not installed")
    require(loopback_namespace_problem())
    clip = padded_clip(tmp_path / "turn.wav", "What is the capital of France?", before_s=1.0, after_s=40.0)  # Chromium loops the file: no second turn before the first is read
    run = run_python_in_loopback_namespace(["-m", "tests.clients.realtime_compare_check", "--wav", clip["path"]], timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    result = last_json_line(run.stdout)
    print(f"Compare tab: {result['summary_a']} | {result['summary_b']}")
    assert result["status"].startswith("Done"), result
    for side in "ab":
        assert "✅" in result[f"summary_{side}"] and "voice-to-voice" in result[f"summary_{side}"], result
        assert result[f"has_audio_{side}"], result
    assert result["reply_a"] == "The capital of France is Paris.", result
    assert result["heard_a"].startswith("What is the capital of France?"), result  # the fake's transcription event
    assert "capital" in result["heard_b"].lower(), result
    assert result["has_timeline_plot"]
