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
from speechlm_demo.votes.pairs import blind_candidates
from speechlm_demo.votes.pending import PendingVotes
from speechlm_demo.votes.rounds import BlindArena
from speechlm_demo.votes.store import VoteStore
from speechlm_demo.votes.voter import COOKIE, VoterIds
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


_COOKIES: dict[str, str] = {}


def voter_cookie(browser: str) -> str:
    """The signed voter cookie the page gave ``browser`` (one per browser, as a real page load would)."""
    if browser not in _COOKIES:
        _COOKIES[browser] = VoterIds().issue(f"addr-{browser}")  # type: ignore[assignment]
    return _COOKIES[browser]


def request(browser: str = "browser-1", *, session_hash: str | None = None, address: str = "192.0.2.1", **query: str) -> Any:
    """A Gradio request from ``browser`` (its voter cookie; a new page load has a new ``session_hash``)."""
    return SimpleNamespace(
        session_hash=session_hash or browser,
        query_params=query,
        cookies={COOKIE: voter_cookie(browser)},
        client=SimpleNamespace(host=address),
    )


def played(path: str | None) -> tuple[int, np.ndarray]:
    """The reply file the browser would fetch: its rate and samples."""
    assert path is not None
    audio, rate = sf.read(path, dtype="float32")
    return rate, audio


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
    (rate_a, audio_a), (rate_b, audio_b) = played(final[1]), played(final[2])
    assert np.abs(audio_a).max() > 0.1
    assert rate_a == rate_b == 24_000  # one rate and one loudness: neither gives an engine away
    assert abs(rms_dbfs(audio_a) + 23.0) < 0.5 and abs(rms_dbfs(audio_b) + 23.0) < 0.5
    assert interactive(final, 3) == [False] * 4 and "Listen to both" in final[0]
    leaked = [name for name in IDENTITY if name in texts(outputs) or name in round_id.lower()]  # file paths included
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
    votes = tab.arena.store.frame(["engine_a", "engine_b", "outcome", "tag", "voter_id"])
    voter_id = voter_cookie("browser-1").split(".")[0]
    assert len(votes) == 1 and votes.iloc[0]["outcome"] == "b" and votes.iloc[0]["voter_id"] == voter_id


def test_another_browser_cannot_vote_on_the_round(tab: BlindTab) -> None:
    round_id = list(tab.live_round(spoken_turn(), True, request()))[-1][-1]
    outputs = tab.vote("a", round_id, request("someone-else"))
    assert "not valid for your session" in outputs[0]
    assert len(tab.arena.store.frame(["vote_id"])) == 0


def test_an_unexpected_store_error_says_the_vote_was_not_saved_and_leaves_it_open(tab: BlindTab, monkeypatch: pytest.MonkeyPatch) -> None:
    round_id = list(tab.live_round(spoken_turn(), True, request()))[-1][-1]
    for side in "ab":
        asyncio.run(tab.listening(round_id, side, request()))
    real_add = tab.arena.store.add

    def broken(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("driver bug")

    monkeypatch.setattr(tab.arena.store, "add", broken)
    failed = tab.vote("a", round_id, request())
    assert "NOT saved" in failed[0] and interactive(failed, 1) == [True] * 4
    monkeypatch.setattr(tab.arena.store, "add", real_add)
    assert "Revealed" in tab.vote("a", round_id, request())[0]  # the round was given back: the retry is stored
    assert len(tab.arena.store.frame(["vote_id"])) == 1


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
    assert not any(name in texts(outputs) or name in round_id.lower() for name in IDENTITY)  # file names are random
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


def test_a_session_with_a_damaged_manifest_is_explained_on_load_and_on_draw(tab: BlindTab, data_dir: Path) -> None:
    folder = sessions_root() / "wrongtypes"
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text('{"name": "wrongtypes", "engines": [], "prompts": "x"}')
    info, live, session_box, tag = session_mode(request(session="wrongtypes"))
    assert info.startswith("⚠️") and "damaged" in info and live["visible"] is True and session_box["visible"] is False and tag == ""
    outputs = tab.session_round("wrongtypes", request())  # a page that kept the tag from before the manifest broke
    assert outputs[0] is None and outputs[1].startswith("⚠️") and "damaged" in outputs[1] and outputs[-1] == ""


def test_a_scripted_stuffer_is_refused_and_learns_nothing_from_reveals(tab: BlindTab, registry: EngineRegistry, tmp_path: Path) -> None:
    """The probe of issue 13, item 1: invented session ids, repeated votes on one (prompt, pair) across reloads,
    and reply URLs learned from reveals used to unblind later rounds."""
    from gradio.processing_utils import hash_file

    prompts = tmp_path / "prompts"
    prompts.mkdir()
    sf.write(prompts / "q.wav", np.concatenate([tone(0.6), silence(0.2)]), 16_000)
    prepare(registry, prompts, ["zebra", "quokka"], "club-2")  # one prompt, one pair: every round is the same pair

    for index in range(24):  # invented session ids, no voter cookie (or a forged one): no round, no vote
        cookies = {} if index % 2 else {COOKIE: f"invented-{index}.AAAAAAAAAAAAAAAAAAAAAAAA"}
        fake = SimpleNamespace(session_hash=f"invented-{index}", query_params={}, cookies=cookies, client=SimpleNamespace(host="192.0.2.66"))
        assert tab.session_round("club-2", fake)[-1] == ""
        assert "no voter id" in tab.vote("a", "some.round.id", fake)[0]
    assert tab.arena.store.count() == 0

    served: list[str] = []
    revealed = ""
    for attempt in range(7):  # the same browser (cookie) reloading between tries: a new session_hash each time
        page = request("attacker", session_hash=f"reload-{attempt}")
        outputs = tab.session_round("club-2", page)
        round_id = outputs[-1]
        if not round_id:
            assert "voted on every pair" in outputs[1]
            continue
        served += [outputs[2], outputs[3]]
        for side in "ab":
            asyncio.run(tab.listening(round_id, side, page))
        revealed = tab.vote("a", round_id, page)[5]
    assert "zebra model" in revealed.lower() and tab.arena.store.count() == 1  # one vote, not seven

    learned = set(served)  # what the attacker knows: these URLs belong to the revealed engines
    for browser in ("browser-2", "browser-3", "browser-4"):
        outputs = tab.session_round("club-2", request(browser))
        fresh = [outputs[2], outputs[3]]
        assert not learned & set(fresh), "a reply URL was reused: a reveal would unblind this round"
        for path in fresh:
            assert hash_file(path) not in path and Path(path).parent.name not in {Path(p).parent.name for p in learned}
        assert sorted(len(played(p)[1]) for p in fresh) == sorted(len(played(p)[1]) for p in served[:2])  # same replies
        learned |= set(fresh)


def test_rejected_and_abandoned_draws_do_not_stay_in_memory(tab: BlindTab, registry: EngineRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    sf.write(prompts / "q.wav", np.concatenate([tone(0.6), silence(0.2)]), 16_000)
    prepare(registry, prompts, ["zebra", "quokka"], "club-3")  # one prompt, one pair
    round_id = tab.session_round("club-3", request())[-1]
    for side in "ab":
        asyncio.run(tab.listening(round_id, side, request()))
    assert "Thanks" in tab.vote("a", round_id, request())[5]
    for _ in range(6):  # every draw is rejected (already voted): 6 x DRAW_ATTEMPTS rounds drawn and dropped
        assert "voted on every pair" in tab.session_round("club-3", request())[1]
    assert list(tab.arena._rounds) == [round_id]  # only the voted round (kept until it expires)

    shown = round_id
    for _ in range(4):  # new live rounds replace the shown one, unvoted: the page passes the round it showed
        shown = list(tab.live_round(spoken_turn(), True, request(), shown))[-1][-1]
        assert list(tab.arena._rounds) == [round_id, shown]

    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("engine crashed")

    with monkeypatch.context() as patched:
        patched.setattr(tab.arena, "run_round", broken)
        assert "failed" in list(tab.live_round(spoken_turn(), True, request(), shown))[-1][0]
    assert list(tab.arena._rounds) == [round_id]
    gone = tab.live_round(spoken_turn(), True, request())
    abandoned = next(gone)[-1]  # "answering…": then the page closes
    assert abandoned in tab.arena._rounds
    gone.close()
    assert list(tab.arena._rounds) == [round_id]


def test_the_vote_buttons_show_progress_on_the_status_line_while_the_vote_is_written(registry: EngineRegistry, data_dir: Path) -> None:
    from speechlm_demo.ui.blind_tab import build_blind_tab

    store = VoteStore(f"sqlite:///{data_dir / 'votes.sqlite3'}")
    with gr.Blocks() as demo:
        build_blind_tab(demo, registry, BlindArena(store, lambda: blind_candidates(registry), pending=PendingVotes(store)))
    config = demo.get_config_file()
    elem = {c["id"]: c.get("props", {}).get("elem_id") for c in config["components"]}
    clicks = [d for d in config["dependencies"] if any((elem.get(t[0]) or "").startswith("blind-vote-") for t in d["targets"])]
    assert len(clicks) == 4
    for click in clicks:  # a vote waiting for a locked database (up to ~1 s) is visibly under way
        assert click["show_progress"] == "minimal" and [elem[i] for i in click["show_progress_on"]] == ["blind-status"]
    store.close()
