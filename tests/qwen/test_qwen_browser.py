"""A browser user picks Qwen2.5-Omni (fake vLLM-Omni server) against the cascade in the Compare tab."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.browser_run import assert_compare_answered, require_browser, run_check
from tests.support.speech import padded_clip


@pytest.mark.browser
def test_chromium_compares_qwen_omni_and_the_cascade(tmp_path: Path) -> None:
    require_browser()
    clip = padded_clip(tmp_path / "turn.wav", "What is the capital of France?", before_s=1.0, after_s=14.0)
    result = run_check(["-m", "tests.qwen.compare_browser", "--wav", clip["path"]])
    assert_compare_answered(result)
    assert result["reply_a"].startswith("I heard") and result["fake_requests"] >= 1
    assert "capital" in result["heard_b"].lower()
