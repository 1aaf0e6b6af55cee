"""Blind rounds: pair sampling, side balance, the vote's lifecycle, refusals and a store that is down."""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import sqlalchemy as sa

from speechlm_demo.compare import Comparison, SideResult
from speechlm_demo.votes.limits import VoteRefused
from speechlm_demo.votes.pairs import NotEnoughEngines, audio_sha256, engine_version, pick_pair
from speechlm_demo.votes.pending import PendingVotes
from speechlm_demo.votes.rounds import BlindArena, BlindRound
from speechlm_demo.votes.store import StoreUnavailable, VoteRecord, VoteStore
from tests.votes.conftest import locked, make_entry, make_record

ENTRIES = [make_entry("alpha", 1.0), make_entry("beta", 2.0), make_entry("gamma", 1.0), make_entry("off", 0.0)]
TURN = (0.1 * np.sin(np.arange(8000) / 5.0)).astype(np.float32)


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def reply(engine_id: str, status: str = "ok", text: str = "hi", latency: float = 640.0) -> SideResult:
    audio = np.full(800, 0.2, np.float32) if status == "ok" else np.zeros(0, np.float32)
    timeline = {"status": status, "metrics": {"voice_to_voice_ms": latency}} if status == "ok" else {}
    return SideResult(engine_id, status, "" if status == "ok" else "it broke", audio, 16_000, "what time is it", text, timeline)  # type: ignore[arg-type]


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def arena(store: VoteStore, clock: Clock, tmp_path: Path) -> Iterator[BlindArena]:
    pending = PendingVotes(store, tmp_path / "spool.jsonl", retry_s=60)
    blind_arena = BlindArena(store, lambda: ENTRIES, pending=pending, rng=random.Random(1), clock=clock, rate_limit=(3, 60.0))
    yield blind_arena
    blind_arena.close()


def ready_round(arena: BlindArena, session: str = "s1", *, listen: str = "ab", status_b: str = "ok", turn: np.ndarray = TURN) -> BlindRound:
    blind = arena.start_round(session, turn, 16_000, tag="lab-1")
    a, b = blind.engines
    arena.record_replies(blind.round_id, session, Comparison(reply(a.id, text="reply A", latency=500.0), reply(b.id, status_b, "reply B", 900.0)))
    listen_to(arena, blind, session, listen)
    return blind


def listen_to(arena: BlindArena, blind: BlindRound, session: str, sides: str) -> None:
    """Press play on each side and let the (fake) clock run past the minimum listen time."""
    for side in sides:
        arena.start_listening(blind.round_id, session, side)  # type: ignore[arg-type]
    arena.clock.now += arena.min_listen_s  # type: ignore[attr-defined]
    for side in sides:
        arena.mark_listened(blind.round_id, session, side)  # type: ignore[arg-type]


def refused(reason: str, call, *args) -> None:
    with pytest.raises(VoteRefused) as info:
        call(*args)
    assert info.value.reason == reason, info.value


def test_pairs_follow_weights_and_never_repeat_an_engine() -> None:
    rng = random.Random(0)
    draws = [pick_pair(ENTRIES, rng) for _ in range(30_000)]
    assert all(a.id != b.id for a, b in draws) and not any("off" in (a.id, b.id) for a, b in draws)
    pairs = Counter(frozenset((a.id, b.id)) for a, b in draws)
    weights = {"alpha": 1.0, "beta": 2.0, "gamma": 1.0}
    total = sum(weights.values())
    for pair, seen in pairs.items():
        i, j = sorted(pair)
        p = weights[i] * weights[j] / total * (1 / (total - weights[i]) + 1 / (total - weights[j]))
        assert abs(seen - p * len(draws)) < 4 * np.sqrt(len(draws) * p * (1 - p)), pair


def test_sides_are_balanced() -> None:
    rng = random.Random(2)
    draws = [pick_pair(ENTRIES, rng) for _ in range(20_000)]
    for pair in ({"alpha", "beta"}, {"beta", "gamma"}, {"alpha", "gamma"}):
        shown = [(a.id, b.id) for a, b in draws if {a.id, b.id} == pair]
        first = min(pair)
        on_a = sum(a == first for a, _ in shown)
        assert abs(on_a - len(shown) / 2) < 4 * np.sqrt(len(shown) / 4), (pair, on_a, len(shown))


def test_too_few_engines() -> None:
    with pytest.raises(NotEnoughEngines):
        pick_pair([make_entry("alpha"), make_entry("off", 0.0)], random.Random(0))


def test_a_vote_is_stored_with_its_round(arena: BlindArena, store: VoteStore) -> None:
    blind = ready_round(arena)
    receipt = arena.submit_vote(blind.round_id, "s1", "b")
    assert not receipt.queued and (receipt.engine_a, receipt.engine_b) == (blind.engines[0].id, blind.engines[1].id)
    record = store.get(blind.round_id)
    assert record is not None and record.vote_id == receipt.vote_id
    assert (record.engine_a, record.engine_b, record.outcome, record.voter_id, record.tag) == (blind.engines[0].id, blind.engines[1].id, "b", "s1", "lab-1")
    assert record.input_sha256 == audio_sha256(TURN, 16_000) != audio_sha256(TURN, 8_000)
    assert (record.reply_text_a, record.reply_text_b, record.user_text) == ("reply A", "reply B", "what time is it")
    assert (record.latency_a_ms, record.latency_b_ms) == (500.0, 900.0)
    assert record.engine_version_a == engine_version(blind.engines[0]) and record.app_version == "0.1.0"
    assert record.audio_dir is None and store.count() == 1


def test_refusals_store_nothing(arena: BlindArena, store: VoteStore, clock: Clock) -> None:
    blind = arena.start_round("s1", TURN, 16_000)
    refused("not_ready", arena.submit_vote, blind.round_id, "s1", "a")
    blind = ready_round(arena, listen="a")
    refused("not_listened", arena.submit_vote, blind.round_id, "s1", "a")
    refused("bad_outcome", arena.submit_vote, blind.round_id, "s1", "A better")
    refused("bad_side", arena.mark_listened, blind.round_id, "s1", "c")
    refused("tampered", arena.submit_vote, blind.round_id, "s2", "a")  # another session's round
    refused("tampered", arena.submit_vote, blind.round_id[:-2] + "xx", "s1", "a")
    refused("tampered", arena.submit_vote, "x" + blind.round_id, "s1", "a")
    refused("tampered", arena.submit_vote, "not-a-round", "s1", "a")
    listen_to(arena, blind, "s1", "b")
    arena.submit_vote(blind.round_id, "s1", "tie")
    refused("duplicate", arena.submit_vote, blind.round_id, "s1", "a")  # a double click
    stranger = BlindArena(store, lambda: ENTRIES, secret=arena._secret, clock=clock)
    refused("unknown", stranger.submit_vote, blind.round_id, "s1", "a")  # signed by us, but not a round it knows
    stranger.close()  # its spool's retry thread
    old = ready_round(arena)
    clock.now += arena.ttl_s + 1
    refused("expired", arena.submit_vote, old.round_id, "s1", "a")
    assert store.count() == 1 and store.get(blind.round_id).outcome == "tie"  # type: ignore[union-attr]


def test_a_failed_side_need_not_be_listened_to(arena: BlindArena, store: VoteStore) -> None:
    blind = ready_round(arena, listen="a", status_b="failed")
    arena.submit_vote(blind.round_id, "s1", "a")
    assert store.get(blind.round_id).status_b == "failed"  # type: ignore[union-attr]


def test_concurrent_double_submit_stores_one_vote(arena: BlindArena, store: VoteStore) -> None:
    blind = ready_round(arena)
    outcomes: list[str] = []
    barrier = threading.Barrier(12)

    def click() -> None:
        barrier.wait()
        try:
            arena.submit_vote(blind.round_id, "s1", "a")
            outcomes.append("stored")
        except VoteRefused as exc:
            outcomes.append(exc.reason)

    threads = [threading.Thread(target=click) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["duplicate"] * 11 + ["stored"] and store.count() == 1


def test_rate_limit_per_session(arena: BlindArena, store: VoteStore, clock: Clock) -> None:
    turns = [TURN * (1 - 0.01 * i) for i in range(5)]  # five different turns: one vote per pair and turn
    for turn in turns[:3]:
        arena.submit_vote(ready_round(arena, turn=turn).round_id, "s1", "a")
    waiting = ready_round(arena, turn=turns[3])
    refused("rate_limited", arena.submit_vote, waiting.round_id, "s1", "a")
    arena.submit_vote(ready_round(arena, "s2").round_id, "s2", "a")  # other sessions are not affected
    clock.now += 61
    arena.submit_vote(waiting.round_id, "s1", "a")
    assert store.count() == 5


def test_store_down_vote_is_queued_then_stored_once(arena: BlindArena, store: VoteStore, db_path: Path) -> None:
    blind = ready_round(arena)
    with locked(db_path):
        receipt = arena.submit_vote(blind.round_id, "s1", "a")
        assert receipt.queued and "kept on disk" in receipt.message and len(arena.pending) == 1
        refused("duplicate", arena.submit_vote, blind.round_id, "s1", "b")
        assert arena.pending.drain() == 0
    assert arena.pending.drain() == 1 and arena.pending.drain() == 0
    assert store.count() == 1 and store.get(blind.round_id).vote_id == receipt.vote_id  # type: ignore[union-attr]


def test_votes_on_a_locked_database_are_kept_within_seconds_not_one_after_another(db_path: Path, clock: Clock, tmp_path: Path) -> None:
    store = VoteStore(f"sqlite:///{db_path}")  # the app's default wait
    arena = BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store, tmp_path / "spool.jsonl", retry_s=3600), clock=clock)
    rounds = [ready_round(arena, f"voter-{n}") for n in range(3)]
    results: dict[int, tuple[float, bool]] = {}

    def vote(n: int) -> None:
        started = time.monotonic()
        receipt = arena.submit_vote(rounds[n].round_id, f"voter-{n}", "a", address=f"192.0.2.{n}")
        results[n] = (time.monotonic() - started, receipt.queued)

    with locked(db_path):
        threads = [threading.Thread(target=vote, args=(n,)) for n in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert all(queued for _, queued in results.values()) and len(arena.pending) == 3, results
    assert max(took for took, _ in results.values()) < 5.0, results  # they used to take 30, 60 and 90 s
    assert arena.pending.drain() == 3 and store.count() == 3
    arena.close()
    store.close()


def test_after_a_vote_gave_up_on_a_locked_database_its_judgement_rows_do_not_wait_as_long(db_path: Path, clock: Clock, tmp_path: Path) -> None:
    from speechlm_demo.judges.records import JudgementStore

    store = VoteStore(f"sqlite:///{db_path}", busy_timeout_s=2.0)
    written: list[str] = []

    def hook(record: VoteRecord, replies: Comparison | None) -> list[str]:  # what the app's judge hook writes
        for side in "ab":
            try:
                JudgementStore(store).open(record.vote_id, side, record.engine_a if side == "a" else record.engine_b, "")
                written.append(side)
            except StoreUnavailable:
                pass
        return []

    arena = BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store, tmp_path / "spool.jsonl", retry_s=3600), clock=clock, on_vote=hook)
    blind = ready_round(arena)
    with locked(db_path):
        started = time.monotonic()
        receipt = arena.submit_vote(blind.round_id, "s1", "a")
        took = time.monotonic() - started
    assert receipt.queued and written == []
    assert took < 4.0, took  # one wait of 2 s for the vote, then short ones (it was 2 s for each of the three writes)
    arena.submit_vote(ready_round(arena, "s2").round_id, "s2", "b")  # the database is back: a write ends the short waits
    assert written == ["a", "b"] and store.count() == 1
    arena.close()
    store.close()


def test_queued_votes_survive_a_restart(arena: BlindArena, store: VoteStore, db_path: Path, tmp_path: Path) -> None:
    blind = ready_round(arena)
    with locked(db_path):
        arena.submit_vote(blind.round_id, "s1", "both_bad")
    restarted = PendingVotes(store, tmp_path / "spool.jsonl", retry_s=60)
    assert len(restarted) == 1
    assert restarted.drain() == 1 and arena.pending.drain() == 1  # both copies drain: still one row
    assert store.count() == 1 and store.get(blind.round_id).outcome == "both_bad"  # type: ignore[union-attr]
    assert PendingVotes(store, tmp_path / "spool.jsonl").drain() == 0  # the spool is empty now
    restarted.close()


def test_background_retry(store: VoteStore, db_path: Path, clock: Clock, tmp_path: Path) -> None:
    arena = BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store, tmp_path / "spool.jsonl", retry_s=0.05), clock=clock)
    with locked(db_path):
        arena.submit_vote(ready_round(arena).round_id, "s1", "a")
    for _ in range(200):
        if store.count() == 1:
            break
        threading.Event().wait(0.05)
    assert store.count() == 1 and len(arena.pending) == 0


def test_store_down_and_queue_full_tells_the_user(store: VoteStore, db_path: Path, clock: Clock) -> None:
    arena = BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store, None, limit=0), clock=clock)
    blind = ready_round(arena)
    with locked(db_path), pytest.raises(StoreUnavailable):
        arena.submit_vote(blind.round_id, "s1", "a")
    assert store.count() == 0
    arena.submit_vote(blind.round_id, "s1", "a")  # not counted as voted: the user can try again
    assert store.count() == 1


def test_audio_is_saved_only_when_asked(store: VoteStore, clock: Clock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECHLM_SAVE_AUDIO", "1")
    arena = BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store), clock=clock)
    assert arena.save_audio and arena.audio_dir == tmp_path / "data" / "audio"
    blind = ready_round(arena, listen="a", status_b="failed")
    receipt = arena.submit_vote(blind.round_id, "s1", "a")
    folder = Path(store.get(blind.round_id).audio_dir)  # type: ignore[union-attr, arg-type]
    assert folder == arena.audio_dir / receipt.vote_id
    assert sorted(p.name for p in folder.iterdir()) == ["a.wav", "input.wav"]  # side B failed: no audio
    audio, rate = sf.read(folder / "input.wav", dtype="float32")
    assert rate == 16_000 and np.allclose(audio, TURN, atol=1e-4)
    monkeypatch.delenv("SPEECHLM_SAVE_AUDIO")
    assert not BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store)).save_audio


@pytest.mark.parametrize(("raw", "saved"), [("true", True), ("on", True), ("YES", True), ("off", False), ("no", False)])
def test_saving_audio_is_an_ordinary_on_off_setting(store: VoteStore, monkeypatch: pytest.MonkeyPatch, raw: str, saved: bool) -> None:
    monkeypatch.setenv("SPEECHLM_SAVE_AUDIO", raw)  # only exactly "1" used to save
    assert BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store)).save_audio is saved


def test_listening_counts_only_after_the_minimum_time_or_the_whole_reply(arena: BlindArena, clock: Clock) -> None:
    blind = arena.start_round("s1", TURN, 16_000)
    refused("not_ready", arena.start_listening, blind.round_id, "s1", "a")
    long_reply = SideResult("x", "ok", "", np.full(16_000 * 10, 0.2, np.float32), 16_000)
    arena.record_replies(blind.round_id, "s1", Comparison(long_reply, reply(blind.engines[1].id)))
    refused("too_early", arena.mark_listened, blind.round_id, "s1", "a")  # never pressed play: "ended" is not enough
    assert arena.start_listening(blind.round_id, "s1", "a") == 3.0
    clock.now += 2.9
    refused("too_early", arena.mark_listened, blind.round_id, "s1", "a")
    clock.now += 0.2
    assert arena.mark_listened(blind.round_id, "s1", "a") is False  # B (0.05 s) still unheard
    assert arena.start_listening(blind.round_id, "s1", "b") == pytest.approx(0.045)
    clock.now += 0.05
    assert arena.mark_listened(blind.round_id, "s1", "b") is True


def test_one_vote_per_pair_and_input_per_session(arena: BlindArena, store: VoteStore) -> None:
    first = ready_round(arena)
    arena.submit_vote(first.round_id, "s1", "a")
    again = arena.start_round("s1", TURN, 16_000, among=list(first.engines))  # the same turn, the same two engines
    arena.record_replies(again.round_id, "s1", Comparison(reply(again.engines[0].id), reply(again.engines[1].id)))
    listen_to(arena, again, "s1", "ab")
    assert arena.has_voted("s1", again)
    refused("duplicate", arena.submit_vote, again.round_id, "s1", "b")
    other = ready_round(arena, "s2")
    assert not arena.has_voted("s2", other)
    arena.submit_vote(other.round_id, "s2", "b")  # another session may
    assert store.count() == 2


def test_audio_that_cannot_be_saved_costs_the_audio_not_the_vote(store: VoteStore, clock: Clock, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the audio folder should be")
    arena = BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store), clock=clock, save_audio=True, audio_dir=blocker)
    blind = ready_round(arena)
    receipt = arena.submit_vote(blind.round_id, "s1", "tie")
    assert not receipt.queued and store.get(blind.round_id).audio_dir is None  # type: ignore[union-attr]


def test_one_vote_failing_unexpectedly_does_not_stop_the_retries_of_others(store: VoteStore, tmp_path: Path) -> None:
    class Flaky:
        """A store that breaks on one particular vote in a way nobody planned for."""

        def add(self, record: VoteRecord, wait_s: float | None = None) -> bool:
            if record.outcome == "tie":
                raise RuntimeError("driver bug")
            return store.add(record)

    pending = PendingVotes(Flaky(), tmp_path / "spool.jsonl", retry_s=60)  # type: ignore[arg-type]
    bad, good = make_record(outcome="tie"), make_record(outcome="a")
    pending._records = {bad.vote_id: bad, good.vote_id: good}
    assert pending.drain() == 1
    assert store.count() == 1 and len(pending) == 1  # the odd one stays queued, nothing is lost


def test_reads_from_a_broken_database_say_unavailable(tmp_path: Path) -> None:
    broken = VoteStore(f"sqlite:///{tmp_path / 'v.sqlite3'}")
    broken.engine = sa.create_engine(f"sqlite:///{tmp_path / 'gone' / 'v.sqlite3'}")  # its folder vanished
    for read in (broken.count, broken.frame, lambda: broken.get("r")):
        with pytest.raises(StoreUnavailable):
            read()


def test_limits_are_keyed_on_the_voter_and_on_the_address(store: VoteStore, clock: Clock, tmp_path: Path) -> None:
    pending = PendingVotes(store, tmp_path / "spool.jsonl", retry_s=60)
    arena = BlindArena(store, lambda: ENTRIES, pending=pending, clock=clock, rate_limit=(2, 60.0), address_limit=(3, 60.0), daily_cap=4)
    turns = [TURN * (1 + i / 100) for i in range(12)]
    arena.submit_vote(ready_round(arena, "v1", turn=turns[0]).round_id, "v1", "a", address="198.51.100.7")
    arena.submit_vote(ready_round(arena, "v1", turn=turns[1]).round_id, "v1", "a", address="198.51.100.7")
    refused("rate_limited", lambda: arena.submit_vote(ready_round(arena, "v1", turn=turns[2]).round_id, "v1", "a", address="203.0.113.9"))
    arena.submit_vote(ready_round(arena, "v2", turn=turns[3]).round_id, "v2", "a", address="198.51.100.7")
    # a third minted id on the same address: the address's own limit refuses it
    refused("rate_limited", lambda: arena.submit_vote(ready_round(arena, "v3", turn=turns[4]).round_id, "v3", "a", address="198.51.100.7"))
    clock.now += 61
    arena.submit_vote(ready_round(arena, "v1", turn=turns[5]).round_id, "v1", "a", address="198.51.100.7")
    clock.now += 61
    arena.submit_vote(ready_round(arena, "v1", turn=turns[6]).round_id, "v1", "a", address="198.51.100.8")
    clock.now += 61
    refused("daily_cap", lambda: arena.submit_vote(ready_round(arena, "v1", turn=turns[7]).round_id, "v1", "a", address="198.51.100.9"))
    assert store.count("v1") == 4 and store.count() == 5
    arena.close()


def test_limits_hold_across_a_restart(store: VoteStore, clock: Clock, tmp_path: Path) -> None:
    first = BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store, tmp_path / "spool.jsonl"), clock=clock, daily_cap=2)
    voted = ready_round(first, "v1")
    first.submit_vote(voted.round_id, "v1", "a", address="192.0.2.1")
    restarted = BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store, tmp_path / "spool.jsonl"), clock=clock, daily_cap=2)
    again = restarted.start_round("v1", TURN, 16_000, among=list(voted.engines))  # the same turn and pair
    assert restarted.has_voted("v1", again)  # the store remembers the pair
    restarted.record_replies(again.round_id, "v1", Comparison(reply(again.engines[0].id), reply(again.engines[1].id)))
    listen_to(restarted, again, "v1", "ab")
    refused("duplicate", restarted.submit_vote, again.round_id, "v1", "b")
    restarted.submit_vote(ready_round(restarted, "v1", turn=TURN * 0.5).round_id, "v1", "a", address="192.0.2.1")
    refused("daily_cap", lambda: restarted.submit_vote(ready_round(restarted, "v1", turn=TURN * 0.25).round_id, "v1", "a"))
    assert store.count("v1") == 2


def test_a_refused_or_failed_vote_does_not_use_up_a_limit(store: VoteStore, db_path: Path, clock: Clock) -> None:
    arena = BlindArena(store, lambda: ENTRIES, pending=PendingVotes(store, None), clock=clock, rate_limit=(1, 60.0))
    blind = ready_round(arena, "v1")
    with locked(db_path), pytest.raises(StoreUnavailable):  # no spool: the vote cannot be kept, the user is told
        arena.submit_vote(blind.round_id, "v1", "a")
    assert arena.submit_vote(blind.round_id, "v1", "a").message == "Thanks, vote recorded."


def test_discard_forgets_only_the_voters_own_open_round(tmp_path: Path) -> None:
    store = VoteStore(f"sqlite:///{tmp_path / 'v.sqlite3'}")
    arena = BlindArena(store, lambda: [make_entry("alpha"), make_entry("beta")], pending=PendingVotes(store))
    mine = arena.start_round("voter-1", np.zeros(1600, np.float32), 16_000)
    arena.discard(mine.round_id, "voter-2")  # someone else's id: nothing happens
    arena.discard("not.a.round", "voter-1")
    assert arena.get_round(mine.round_id, "voter-1") is mine
    for voted in ("voting", "voted"):  # a vote being stored right now, or stored and about to be revealed
        mine.state = voted
        arena.discard(mine.round_id, "voter-1")
        assert arena.get_round(mine.round_id, "voter-1") is mine
    mine.state = "open"
    arena.discard(mine.round_id, "voter-1")
    with pytest.raises(VoteRefused, match="unknown"):
        arena.get_round(mine.round_id, "voter-1")
    arena.close()
    store.close()
