"""The Talk tab shows what engines hear, say and report as plain text (item 9 of issue 13)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from speechlm_demo.rtc import Conversation
from speechlm_demo.ui.talk import escaped
from tests.conftest import require
from tests.support.markup_engine import ERROR, HEARD, SAID
from tests.support.netns import loopback_namespace_problem, run_python_in_loopback_namespace
from tests.support.speech import espeak_available, padded_clip
from tests.test_webrtc import last_json_line

CATALOG = Path(__file__).with_name("data") / "markup_catalog.yaml"


def test_chat_messages_are_escaped_for_markdown_and_html() -> None:
    chat = Conversation()
    chat.add("user", HEARD)
    chat.add("assistant", SAID)
    chat.add("assistant", f"⚠️ {ERROR}")
    shown = escaped(chat.messages)
    assert [m["role"] for m in shown] == ["user", "assistant", "assistant"]  # a warning is a message of its own
    for message in shown:
        assert "<" not in message["content"].replace("\\<", "") and "](" not in message["content"]
    assert chat.messages[0]["content"] == HEARD  # the conversation itself keeps the words as said


@pytest.mark.browser
def test_chromium_shows_hostile_transcripts_as_text(tmp_path: Path) -> None:
    require(None if espeak_available() else "espeak-ng is not installed (apt-get install espeak-ng)")
    require(None if shutil.which("chromium") or os.path.exists("/usr/bin/chromium") else "Chromium is not installed (apt-get install chromium)")
    require(loopback_namespace_problem())
    clip = padded_clip(tmp_path / "turn.wav", "Hello there.", before_s=1.0, after_s=10.0)
    run = run_python_in_loopback_namespace(["-m", "tests.support.markup_check", "--wav", clip["path"], "--catalog", str(CATALOG)], timeout=240)
    assert run.returncode == 0, run.stderr[-4000:]
    result = last_json_line(run.stdout)
    assert result["live_markup"] == [] and result["pwned"] is None, result
    text = result["transcript"]
    for literal in ("<img src=x onerror=", "<script>", "<iframe src=", "![tracker](http://127.0.0.9/t.png)", "**bold**", "<svg onload="):
        assert literal in text, (literal, text)
