"""Headless Chromium plays the Compare tab and a whole blind A/B round over real WebRTC (loopback only)."""

from __future__ import annotations

from pathlib import Path

import pytest
import soundfile as sf

from speechlm_demo.cli import main
from speechlm_demo.votes.store import VoteStore
from tests.support.browser_run import assert_compare_answered, require_browser, run_check
from tests.support.speech import padded_clip, speak

PHRASE = "What is the capital of France?"
BLIND_CATALOG = Path(__file__).with_name("data") / "blind_catalog.yaml"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "compare-tab.png"
BLIND_SCREENSHOT = SCREENSHOT.with_name("blind-tab.png")
IDENTITIES = ["parrot", "Parrot Left", "Parrot Right", "EchoEngine", "echo of"]


@pytest.fixture
def spoken_clip(tmp_path: Path) -> dict:
    require_browser()
    return padded_clip(tmp_path / "turn.wav", PHRASE, before_s=1.0, after_s=14.0)


@pytest.mark.browser
def test_chromium_compares_echo_and_cascade_on_one_turn(spoken_clip: dict) -> None:
    SCREENSHOT.parent.mkdir(exist_ok=True)
    labels = "Echo (loopback diagnostic),Offline cascade (Silero VAD + Whisper base + SmolLM2-135M + Piper)"
    result = run_check(
        ["-m", "tests.support.arena_check", "--wav", spoken_clip["path"], "--tab", "compare", "--engines", labels, "--default-engine", "cascade", "--screenshot", str(SCREENSHOT)]
    )
    assert_compare_answered(result)
    assert "echo of" in result["reply_a"]
    assert "capital" in result["heard_b"].lower() and result["reply_b"].strip() not in ("", "(no text)"), result
    assert result["has_timeline_plot"]


@pytest.mark.browser
def test_chromium_plays_a_blind_round_without_seeing_engine_names(spoken_clip: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(tmp_path / "data"))  # the app's vote store, read back below
    result = run_check(
        ["-m", "tests.support.arena_check", "--wav", spoken_clip["path"], "--tab", "blind", "--catalog", str(BLIND_CATALOG),
         "--default-engine", "parrot-left", "--forbidden", ",".join(IDENTITIES), "--screenshot", str(BLIND_SCREENSHOT)]
    )
    assert "Listen to both" in result["status_ready"], result
    assert result["payload_count"] > 0 and result["payload_has_status"], "the payload probe saw nothing"
    assert result["leaks_before_vote"] == [], result["leaks_before_vote"]
    assert not result["votable_before_listening"] and result["votable_after_listening"], result
    assert "Parrot Left" in result["reveal"] and "Parrot Right" in result["reveal"], result["reveal"]
    assert result["leaks_after_vote"], "after the vote the names are revealed, and the probe must see them"
    assert not result["votable_after_vote"]
    store = VoteStore()
    try:
        votes = store.frame(["engine_a", "engine_b", "outcome", "input_sha256", "reply_text_a", "latency_a_ms"])
    finally:
        store.close()
    assert len(votes) == 1, votes
    vote = votes.iloc[0]
    assert vote["outcome"] == "a" and {vote["engine_a"], vote["engine_b"]} == {"parrot-left", "parrot-right"}
    labels = {"parrot-left": "Parrot Left", "parrot-right": "Parrot Right"}
    assert f"A was {labels[vote['engine_a']]}" in result["reveal"] and f"B was {labels[vote['engine_b']]}" in result["reveal"]
    assert len(vote["input_sha256"]) == 64 and "echo of" in vote["reply_text_a"] and vote["latency_a_ms"] > 0


@pytest.mark.browser
def test_chromium_votes_in_a_listening_session_opened_by_url(spoken_clip: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(tmp_path / "data"))
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for index, question in enumerate(["What is the capital of France?", "How many legs does a spider have?"]):
        sf.write(prompts / f"q{index}.wav", speak(question), 16_000)
    catalog = ["--catalog", str(BLIND_CATALOG)]
    assert main(["session", "prepare", "--prompts", str(prompts), "--engines", "parrot-left,parrot-right", "--name", "club-1", *catalog]) == 0
    result = run_check(
        ["-m", "tests.support.arena_check", "--wav", spoken_clip["path"], "--tab", "session", "--session", "club-1",
         *catalog, "--default-engine", "parrot-left", "--forbidden", ",".join(IDENTITIES)]
    )
    assert "club-1" in result["session_info"] and not result["mic_visible"] and result["has_question"], result
    assert "Listen to both" in result["status_ready"] and result["leaks_before_vote"] == [], result
    assert "A was Parrot" in result["reveal"] and "B was Parrot" in result["reveal"], result["reveal"]
    store = VoteStore()
    try:
        votes = store.frame(["tag", "outcome"])
    finally:
        store.close()
    assert votes.to_dict("records") == [{"tag": "club-1", "outcome": "tie"}]
