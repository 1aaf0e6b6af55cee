"""The pending-vote spool: unreadable lines are set aside, other hosts' spools are taken over, each vote is
stored once."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from speechlm_demo.votes.pending import PendingVotes, host_spool
from speechlm_demo.votes.rounds import BlindArena
from speechlm_demo.votes.store import VoteStore
from tests.votes.conftest import make_record

REPO = Path(__file__).resolve().parents[2]


def write_spool(path: Path, *lines: str) -> None:
    """Write a spool as its owner does: whole, then renamed into place (a retry thread may be watching the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text("".join(line + "\n" for line in lines))
    os.replace(temporary, path)


def test_a_corrupt_line_is_set_aside_and_the_other_votes_are_kept(store: VoteStore, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    spool = tmp_path / "pending_votes-here.jsonl"
    first, second = make_record(), make_record()
    torn = '{"vote_id": "abc", "round_id": "r"'
    write_spool(spool, first.to_json(), torn, "[1, 2]", second.to_json())
    with open(spool, "ab") as out:
        out.write(b"\xff\xfe not utf-8\n")
    with caplog.at_level(logging.ERROR):
        pending = PendingVotes(store, spool, retry_s=3600)
    assert len(pending) == 2
    bad = spool.with_name(spool.name + ".bad")
    assert bad.read_bytes().splitlines() == [torn.encode(), b"[1, 2]", b"\xff\xfe not utf-8"]
    for line in (2, 3, 5):
        assert any(str(spool) in r.getMessage() and f"line {line}," in r.getMessage() for r in caplog.records), caplog.text
    assert [json.loads(line)["vote_id"] for line in spool.read_text().splitlines()] == [first.vote_id, second.vote_id]
    PendingVotes(store, spool, retry_s=3600).close()  # a second start finds nothing more to set aside
    assert len(bad.read_bytes().splitlines()) == 3
    assert pending.drain() == 2 and store.get(first.round_id) == first and store.get(second.round_id) == second
    pending.close()


def test_the_app_starts_with_a_corrupt_spool_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    spool = host_spool(data)
    good = make_record()
    write_spool(spool, '{"vote_id": "abc", "round_id": "r"', good.to_json())
    code = "from speechlm_demo.votes.rounds import BlindArena; from speechlm_demo.votes.store import VoteStore; s = VoteStore(); a = BlindArena(s, list); print('pending', len(a.pending)); a.pending.drain(); print('stored', s.count()); a.close()"
    env = os.environ | {"SPEECHLM_DATA_DIR": str(data)}
    env.pop("SPEECHLM_DB_URL", None)
    run = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 0 and "pending 1" in run.stdout and "stored 1" in run.stdout, run.stderr
    assert "JSONDecodeError" not in run.stderr and "line 1" in run.stderr and ".bad" in run.stderr


def test_a_new_host_takes_over_the_spool_of_a_host_gone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    data = tmp_path / "data"
    down = VoteStore("sqlite:////proc/nope/votes.sqlite3", lazy=True)
    monkeypatch.setattr(socket, "gethostname", lambda: "old-container")
    old = PendingVotes(down, host_spool(data), retry_s=3600, adopt=True)
    kept = make_record()
    old.add(kept)
    old.close()
    monkeypatch.setattr(socket, "gethostname", lambda: "new-container")
    store = VoteStore()
    with caplog.at_level(logging.WARNING):
        arena = BlindArena(store, list)
    assert len(arena.pending) == 1 and f"pending_votes-old-container-{os.getpid()}.jsonl" in caplog.text
    assert sorted(p.name for p in data.glob("pending_votes-*")) == [f"pending_votes-new-container-{os.getpid()}.jsonl"]
    assert arena.pending.drain() == 1 and store.get(kept.round_id) == kept
    arena.close()


def test_taking_over_a_live_hosts_spool_loses_nothing_and_stores_each_vote_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two replicas on one data folder while the database is down: the one starting takes over the other's
    spool although that one still runs and keeps adding votes; every vote ends up stored exactly once."""
    db = tmp_path / "votes.sqlite3"
    store = VoteStore(f"sqlite:///{db}", busy_timeout_s=0.2)
    down = VoteStore("sqlite:////proc/nope/votes.sqlite3", lazy=True)
    folder = tmp_path / "data"
    monkeypatch.setattr(socket, "gethostname", lambda: "replica-1")
    live = PendingVotes(down, host_spool(folder), retry_s=3600)
    records = [make_record() for _ in range(60)]
    for record in records[:20]:
        live.add(record)
    monkeypatch.setattr(socket, "gethostname", lambda: "replica-2")
    adding = threading.Thread(target=lambda: [live.add(r) for r in records[20:]])
    adding.start()  # replica-1 rewrites its spool while replica-2 takes it over
    newcomer = PendingVotes(down, host_spool(folder), retry_s=3600, adopt=True)
    adding.join()
    assert len(newcomer) >= 20
    live.store = newcomer.store = store  # the database is back
    assert live.drain() == 60
    newcomer.drain()
    assert store.count() == 60 and set(store.frame(["vote_id"])["vote_id"]) == {r.vote_id for r in records}
    restarted = PendingVotes(store, host_spool(folder), retry_s=3600, adopt=True)  # nothing is left over anywhere
    assert len(restarted) == 0 and restarted.drain() == 0
    for pending in (live, newcomer, restarted):
        pending.close()


def test_two_processes_on_one_host_keep_each_others_spooled_votes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two app processes on one host and data folder (two ports) while the database is down: each rewrote the
    one host spool with only its own votes, so a vote one of them had said was kept on disk was gone."""
    down = VoteStore("sqlite:////proc/nope/votes.sqlite3", lazy=True)
    folder = tmp_path / "data"
    both = []
    for pid in (101, 102):  # both running
        monkeypatch.setattr(os, "getpid", lambda pid=pid: pid)
        both.append(PendingVotes(down, host_spool(folder), retry_s=3600))
    for pending in both:
        pending.add(make_record())  # each voter is told "kept on disk"
    for pending in both:
        pending.close()
    monkeypatch.setattr(os, "getpid", lambda: 103)
    restarted = PendingVotes(down, host_spool(folder), retry_s=3600, adopt=True)
    try:
        assert len(restarted) == 2
    finally:
        restarted.close()


def test_a_claim_left_by_a_taker_that_died_is_taken_over(store: VoteStore, tmp_path: Path) -> None:
    left = tmp_path / "pending_votes-gone.jsonl.claimed-dead-1-abcd1234"
    record = make_record()
    write_spool(left, record.to_json())
    pending = PendingVotes(store, tmp_path / "pending_votes-here.jsonl", retry_s=3600, adopt=True)
    assert len(pending) == 1 and not left.exists()
    assert pending.drain() == 1 and store.get(record.round_id) == record
    pending.close()


def test_a_spool_and_claims_left_on_it_are_all_taken_over(store: VoteStore, tmp_path: Path) -> None:
    """A spool and stale claims of the same host got one claim name in a round: each rename replaced the one
    before, and the votes of all but one were lost."""
    files = [tmp_path / "pending_votes-gone.jsonl", tmp_path / "pending_votes-gone.jsonl.claimed-dead-1-abcd1234",
             tmp_path / "pending_votes-gone.jsonl.claimed-dead-2-ef567890"]
    records = [make_record() for _ in files]
    for path, record in zip(files, records):
        write_spool(path, record.to_json())
    pending = PendingVotes(store, tmp_path / "pending_votes-here.jsonl", retry_s=3600, adopt=True)
    assert len(pending) == 3 and not any(path.exists() for path in files)
    assert pending.drain() == 3 and all(store.get(record.round_id) == record for record in records)
    assert sorted(p.name for p in tmp_path.glob("pending_votes-*")) == ["pending_votes-here.jsonl"]
    pending.close()


def test_a_spool_left_after_the_start_is_taken_over_by_the_periodic_retry(store: VoteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another replica went away after this one started: its spool is taken over without a restart, and its
    vote is stored once."""
    monkeypatch.setattr(socket, "gethostname", lambda: "here")
    folder = tmp_path / "spools"
    pending = PendingVotes(store, host_spool(folder), retry_s=0.05, adopt=True)
    record = make_record()
    left = folder / "pending_votes-gone.jsonl"
    write_spool(left, record.to_json())
    deadline = time.monotonic() + 10
    while (left.exists() or store.count() == 0 or len(pending)) and time.monotonic() < deadline:
        time.sleep(0.05)
    pending.close()
    assert not left.exists() and store.get(record.round_id) == record and store.count() == 1
    assert [p.name for p in folder.glob("pending_votes-*")] == [f"pending_votes-here-{os.getpid()}.jsonl"] and len(pending) == 0
    restarted = PendingVotes(store, host_spool(folder), retry_s=3600, adopt=True)  # nothing is left to take over
    assert len(restarted) == 0 and restarted.drain() == 0 and store.count() == 1
    restarted.close()


def test_a_takeover_that_keeps_failing_is_logged_once_and_its_recovery_too(
    store: VoteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another host's spool cannot be claimed (renamed) at the start nor at the next two retries: one line at
    WARNING or above, the repeats at DEBUG; the fourth try works, one INFO line says so and the vote is stored."""
    monkeypatch.setattr(socket, "gethostname", lambda: "here")
    left = tmp_path / "pending_votes-gone.jsonl"
    record = make_record()
    write_spool(left, record.to_json())
    real_rename, refused = os.rename, []

    def rename(source: Path, target: Path) -> None:
        if Path(source) == left and len(refused) < 3:
            refused.append(target)  # a new claim name at every try
            raise PermissionError(13, "Permission denied", str(source), None, str(target))
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    with caplog.at_level(logging.DEBUG, logger="speechlm_demo.votes.pending"):
        pending = PendingVotes(store, host_spool(tmp_path), retry_s=0.05, adopt=True)
        deadline = time.monotonic() + 10
        while store.count() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        pending.close()
    assert len(refused) == 3 and store.get(record.round_id) == record and not left.exists()
    about = [r for r in caplog.records if "pending_votes-gone.jsonl" in r.getMessage()]
    failed = [r for r in about if "cannot take over" in r.getMessage()]
    assert [r.levelno for r in failed] == [logging.ERROR] and "Permission denied" in caplog.text
    assert [r.levelno for r in about if "failed again" in r.getMessage()] == [logging.DEBUG] * 2
    recovered = [r for r in about if "no longer fails" in r.getMessage()]
    assert [r.levelno for r in recovered] == [logging.INFO] and "3 time(s) in a row" in recovered[0].getMessage()


def test_a_spool_that_cannot_be_saved_is_taken_over_once_it_can_and_said_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """This host's spool cannot be written (a full disk) at the start nor at the next two tries: the other host's
    spool stays on disk, one ERROR says so and nothing claims it was taken over; once the write works the vote is
    in this host's spool, the claim is gone, and "took over" and the recovery are each logged once."""
    monkeypatch.setattr(socket, "gethostname", lambda: "here")
    record = make_record()
    write_spool(tmp_path / "pending_votes-gone.jsonl", record.to_json())
    down = VoteStore("sqlite:////proc/nope/votes.sqlite3", lazy=True)
    real_save, full = PendingVotes._save, [True]

    def save(self: PendingVotes) -> None:
        if full[0]:
            raise OSError(28, "No space left on device", str(self.spool))
        real_save(self)

    monkeypatch.setattr(PendingVotes, "_save", save)
    with caplog.at_level(logging.DEBUG, logger="speechlm_demo.votes.pending"):
        pending = PendingVotes(down, host_spool(tmp_path), retry_s=3600, adopt=True)
        pending._retry_take_over()
        pending._retry_take_over()
        assert [p.name.split(".claimed-")[0] for p in tmp_path.glob("pending_votes-gone.jsonl*")] == ["pending_votes-gone.jsonl"]
        assert "took over" not in caplog.text
        full[0] = False
        pending._retry_take_over()
        pending.close()
    assert not list(tmp_path.glob("pending_votes-gone.jsonl*")) and len(pending) == 1
    assert record.vote_id in host_spool(tmp_path).read_text()
    loud = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([m for m in loud if "cannot write" in m]) == 1 and len([m for m in loud if "took over 1" in m]) == 1
    assert len([r for r in caplog.records if r.levelno == logging.INFO and "no longer fails" in r.getMessage()]) == 1


def test_a_spool_another_host_took_while_this_one_could_not_is_not_called_a_recovery(
    store: VoteStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Another host's spool cannot be claimed at the start; before the next retry it is gone (a third host took it
    over): the retry must not say the takeover "no longer fails" (it never worked), but that nothing is left."""
    monkeypatch.setattr(socket, "gethostname", lambda: "here")
    left = tmp_path / "pending_votes-gone.jsonl"
    write_spool(left, make_record().to_json())
    real_rename = os.rename

    def rename(source: Path, target: Path) -> None:
        if Path(source) == left:
            raise PermissionError(13, "Permission denied", str(source), None, str(target))
        real_rename(source, target)

    monkeypatch.setattr(os, "rename", rename)
    with caplog.at_level(logging.DEBUG, logger="speechlm_demo.votes.pending"):
        pending = PendingVotes(store, host_spool(tmp_path), retry_s=3600, adopt=True)
        left.unlink()  # a third host took it over
        pending._retry_take_over()
        pending._retry_take_over()
        pending.close()
    about = [(r.levelno, r.getMessage()) for r in caplog.records if "pending_votes-gone.jsonl" in r.getMessage()]
    assert [level for level, message in about if "cannot take over" in message] == [logging.ERROR]
    assert not [message for _, message in about if "no longer fails" in message]
    assert [level for level, message in about if "not tried any more" in message] == [logging.INFO]
    assert "another host took the spool over" in about[-1][1] and "1 time(s) in a row" in about[-1][1]
