"""A browser user picks Qwen2.5-Omni (fake vLLM-Omni server) against the cascade in the Compare tab."""

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
def test_chromium_compares_qwen_omni_and_the_cascade(tmp_path: Path) -> None:
    require(None if espeak_available() else "espeak-ng is not installed (apt-get install espeak-ng)")
    require(None if shutil.which("chromium") or os.path.exists("/usr/bin/chromium") else "Chromium is not installed (apt-get install chromium)")
    require(loopback_namespace_problem())
    clip = padded_clip(tmp_path / "turn.wav", "What is the capital of France?", before_s=1.0, after_s=14.0)
    run = run_python_in_loopback_namespace(["-m", "tests.qwen.compare_browser", "--wav", clip["path"]], timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    result = last_json_line(run.stdout)
    assert result["status"].startswith("Done"), result
    for side in "ab":
        assert "✅" in result[f"summary_{side}"] and "voice-to-voice" in result[f"summary_{side}"], result
        assert result[f"has_audio_{side}"], result
    assert result["reply_a"].startswith("I heard") and result["fake_requests"] >= 1
    assert "capital" in result["heard_b"].lower()
