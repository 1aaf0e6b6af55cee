"""Real WebRTC, in a network namespace that has only loopback: an aiortc peer and headless Chromium.

Both feed a spoken clip (espeak-ng) as the microphone to the running app and assert that non-silent
reply audio comes back; the voice-to-voice latency measured at the client is printed.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.conftest import require
from tests.support.browser_run import last_json_line
from tests.support.netns import loopback_namespace_problem, run_python_in_loopback_namespace
from tests.support.speech import espeak_available, padded_clip

PHRASE = "What is the capital of France?"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "talk-tab.png"


@pytest.fixture
def spoken_clip(tmp_path: Path) -> dict:
    require(None if espeak_available() else "espeak-ng is not installed (apt-get install espeak-ng)")
    return padded_clip(tmp_path / "turn.wav", PHRASE, before_s=1.0, after_s=14.0)


@pytest.mark.rtc
def test_aiortc_peer_gets_echo_back(spoken_clip: dict) -> None:
    require(loopback_namespace_problem())
    run = run_python_in_loopback_namespace(
        ["-m", "tests.support.rtc_check", "--wav", spoken_clip["path"], "--speech-end", str(spoken_clip["speech_end_s"]), "--engine", "echo"],
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = last_json_line(run.stdout)
    print(f"aiortc peer: voice-to-voice {result['voice_to_voice_ms']} ms (echo engine)")
    assert result["loud_frames"] >= 50, result  # at least a second of non-silent reply audio
    assert result["voice_to_voice_ms"] is not None and 0 < result["voice_to_voice_ms"] < 5000


@pytest.mark.browser
@pytest.mark.parametrize("engine, expected_words", [("echo", ["echo of"]), ("cascade", ["capital", "Paris"])])
def test_chromium_talks_to_the_engine(spoken_clip: dict, engine: str, expected_words: list[str]) -> None:
    require(None if shutil.which("chromium") or os.path.exists("/usr/bin/chromium") else "Chromium is not installed (apt-get install chromium)")
    require(loopback_namespace_problem())
    args = ["-m", "tests.support.browser_check", "--wav", spoken_clip["path"], "--engine", engine]
    if engine == "cascade":  # the README's screenshot: the default engine after one turn
        SCREENSHOT.parent.mkdir(exist_ok=True)
        args += ["--screenshot", str(SCREENSHOT)]
    run = run_python_in_loopback_namespace(args, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    result = last_json_line(run.stdout)
    print(f"Chromium page: voice-to-voice {result['voice_to_voice_ms']} ms ({engine}), status: {result['status']}")
    assert result["probe_errors"] == []
    assert result["reply_onset_ms"] is not None, result
    assert result["reply_loud_ms"] >= 300 and result["remote_max_dbfs"] > -30, result
    assert "voice-to-voice" in result["status"]
    transcript = result["transcript"].lower()
    assert any(word.lower() in transcript for word in expected_words), result["transcript"]
    assert result["has_timeline_plot"]
