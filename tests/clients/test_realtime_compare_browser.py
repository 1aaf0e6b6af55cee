"""Headless Chromium compares gpt-realtime (against the fake Realtime server) with the offline cascade."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser_run import assert_compare_answered, require_browser, run_check
from tests.support.speech import padded_clip


@pytest.mark.browser
def test_chromium_compares_gpt_realtime_and_the_cascade(tmp_path: Path) -> None:
    require_browser()
    clip = padded_clip(tmp_path / "turn.wav", "What is the capital of France?", before_s=1.0, after_s=40.0)  # Chromium loops the file: no second turn before the first is read
    result = run_check(["-m", "tests.clients.realtime_compare_check", "--wav", clip["path"]])
    assert_compare_answered(result)
    assert result["reply_a"] == "The capital of France is Paris.", result
    assert result["heard_a"].startswith("What is the capital of France?"), result  # the fake's transcription event
    heard_b = result["heard_b"].lower()  # the cascade's Whisper base on Opus audio: "Capitol on France" happens
    assert "capit" in heard_b or "france" in heard_b, result
    assert result["has_timeline_plot"]
