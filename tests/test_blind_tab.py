"""The Blind A/B tab's handlers: anonymous until the vote, listening gates the vote, sessions, reveal."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import gradio as gr
import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.recorder import RecordedTurn
from speechlm_demo.ui.blind_tab import BlindTab, session_mode
from speechlm_demo.votes.listening import prepare, sessions_root
from speechlm_demo.votes.pending import PendingVotes
from speechlm_demo.votes.rounds import BlindArena, blind_candidates
from speechlm_demo.votes.store import VoteStore
from tests.engines_for_tests import engine_entry, registry_of, silence, tone

IDENTITY = ["zebra", "quokka", "scriptedengine", "slowengine", "tests.engines_for_tests"]


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(tmp_path))
    return tmp_path


@pytest.fixture
def registry() -> EngineRegistry:
    return registry_of(engine_entry("zebra", "Zebra Model"), engine_entry("quokka", "Quokka Model", "SlowEngine"))


@pytest.fixture
def tab(registry: EngineRegistry, data_dir: Path) -> BlindTab:
    store = VoteStore(f"sqlite:///{data_dir / 'votes.sqlite3'}")
    arena = BlindArena(store, lambda: blind_candidates(registry), pending=PendingVotes(store))
    yield BlindTab(registry, arena)
    arena.close()
    store.close()


def request(browser: str = "browser-1", **query: str) -> Any:
    return SimpleNamespace(session_hash=browser, query_params=query)


def texts(value: Any) -> str:
    """Every string in handler outputs (updates included), lower-cased; audio arrays are skipped."""
    if isinstance(value, str):
        return value.lower()
    if isinstance(value, dict):
        return " ".join(texts(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return " ".join(texts(v) for v in value)
    return ""


def spoken_turn() -> RecordedTurn:
    return RecordedTurn(1, np.concatenate([silence(0.2), tone(0.7), silence(0.2)]), 16_000)


def interactive(outputs: tuple, first: int) -> list[bool]:
    return [update["interactive"] for update in outputs[first : first + 4]]


def test_a_live_round_stays_anonymous_until_the_vote_and_then_reveals(tab: BlindTab) -> None:
    outputs = list(tab.live_round(spoken_turn(), True, request()))
    assert len(outputs) == 2  # blind timing: "answering", then both replies together
    assert "answering" in outputs[0][0]
    final = outputs[-1]
    round_id = final[-1]
    assert final[1] is not None and final[2] is not None and np.abs(final[1][1]).max() > 0.1
    assert final[1][0] == final[2][0] == 24_000  # one rate and one loudness: neither gives an engine away
    assert final[1][1].dtype == np.int16  # Gradio rescales float audio to full scale; int16 is sent as is
    assert abs(rms_dbfs(final[1][1] / 32768) + 23.0) < 0.5 and abs(rms_dbfs(final[2][1] / 32768) + 23.0) < 0.5
    assert interactive(final, 3) == [False] * 4 and "Listen to both" in final[0]
    leaked = [name for name in IDENTITY if name in texts(outputs) or name in round_id.lower()]
    assert leaked == []

    refused = tab.vote("a", round_id, request())
    assert "listen" in refused[0].lower() and interactive(refused, 1) == [False] * 4
    early = tab.heard(round_id, "a", request())  # "ended" without having played: does not count
    assert list(early) == [gr.skip()] * 5
    assert "A heard" in asyncio.run(tab.listening(round_id, "a", request()))[0]
    unlocked = asyncio.run(tab.listening(round_id, "b", request()))  # waits the minimum listen time
    assert interactive(unlocked, 1) == [True] * 4

    status, *rest = tab.vote("b", round_id, request())
    reveal, figure = rest[4], rest[5]
    assert "zebra model" in reveal.lower() and "quokka model" in reveal.lower() and "voice-to-voice" in reveal
    assert figure is not None and interactive((status, *rest), 1) == [False] * 4
    assert list(tab.heard(round_id, "a", request())) == [gr.skip()] * 5  # a reply ending after the vote unlocks nothing
    again = tab.vote("a", round_id, request())
    assert "already voted" in again[0]
    votes = tab.arena.store.frame(["engine_a", "engine_b", "outcome", "tag", "session_id"])
    assert len(votes) == 1 and votes.iloc[0]["outcome"] == "b" and votes.iloc[0]["session_id"] == "browser-1"


def test_another_browser_cannot_vote_on_the_round(tab: BlindTab) -> None:
    round_id = list(tab.live_round(spoken_turn(), True, request()))[-1][-1]
    outputs = tab.vote("a", round_id, request("someone-else"))
    assert "not valid for your session" in outputs[0]
    assert len(tab.arena.store.frame(["vote_id"])) == 0


def test_without_blind_timing_the_faster_reply_is_released_first(tab: BlindTab) -> None:
    outputs = list(tab.live_round(spoken_turn(), False, request()))
    partial = [o for o in outputs[1:-1] if (o[1] is None) != (o[2] is None)]
    assert partial, "one reply should be released before the other"
    assert "still coming" in partial[0][0]


def test_a_round_needs_two_engines(data_dir: Path) -> None:
    lonely = registry_of(engine_entry("zebra", "Zebra Model"), engine_entry("diag", "Diagnostic", weight=0.0))
    store = VoteStore(f"sqlite:///{data_dir / 'v.sqlite3'}")
    tab = BlindTab(lonely, BlindArena(store, lambda: blind_candidates(lonely), pending=PendingVotes(store)))
    outputs = list(tab.live_round(spoken_turn(), True, request()))
    assert "at least two engines" in outputs[0][0] and outputs[0][-1] == ""
    assert "no round" in tab.vote("a", "", request())[0]


def test_listening_session_rounds_carry_the_session_tag(tab: BlindTab, registry: EngineRegistry, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    sf.write(prompts / "q.wav", np.concatenate([tone(0.6), silence(0.2)]), 16_000)
    prepare(registry, prompts, ["zebra", "quokka"], "club-night")
    assert (sessions_root() / "club-night" / "manifest.json").exists()

    info, live, session_box, tag = session_mode(request(session="club-night"))
    assert "club-night" in info and live["visible"] is False and session_box["visible"] is True and tag == "club-night"
    assert not any(name in info.lower() for name in IDENTITY)
    outputs = tab.session_round("club-night", request())
    question, round_id = outputs[0], outputs[-1]
    assert question[0] == 16_000 and np.abs(question[1]).max() > 0.2
    assert outputs[2] is not None and outputs[3] is not None
    assert not any(name in texts(outputs) or name in round_id.lower() for name in IDENTITY)
    for side in "ab":
        asyncio.run(tab.listening(round_id, side, request()))
    tab.vote("tie", round_id, request())
    again = tab.session_round("club-night", request())  # one question, one pair: nothing left to vote on
    assert "voted on every pair" in again[1] and again[-1] == ""
    votes = tab.arena.store.frame(["tag", "outcome", "latency_a_ms"])
    assert votes.iloc[0]["tag"] == "club-night" and votes.iloc[0]["outcome"] == "tie" and votes.iloc[0]["latency_a_ms"] > 0


def test_unknown_or_unsafe_sessions_fall_back_to_the_microphone(data_dir: Path) -> None:
    for name in ("nope", "../../etc"):
        info, live, session_box, tag = session_mode(request(session=name))
        assert info.startswith("⚠️") and live["visible"] is True and session_box["visible"] is False and tag == ""
    assert session_mode(request())[0] == "" and session_mode(request())[3] == ""
