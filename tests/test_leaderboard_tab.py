"""The leaderboard views read real votes back from a store."""

from __future__ import annotations

import uuid
from pathlib import Path

from speechlm_demo.ui.leaderboard_tab import leaderboard_views
from speechlm_demo.votes.store import VoteRecord, VoteStore


def vote(a: str, b: str, outcome: str, tag: str = "") -> VoteRecord:
    return VoteRecord(
        vote_id=uuid.uuid4().hex, round_id=uuid.uuid4().hex, session_id="s", engine_a=a, engine_b=b, outcome=outcome,
        input_sha256="0" * 64, app_version="test", engine_version_a="1", engine_version_b="1",
        latency_a_ms=400.0, latency_b_ms=900.0, tag=tag,
    )


def test_views_rank_engines_and_filter_by_session(tmp_path: Path) -> None:
    store = VoteStore(f"sqlite:///{tmp_path / 'votes.sqlite3'}")
    for _ in range(12):
        store.add(vote("fast", "slow", "a"))
    for _ in range(3):
        store.add(vote("fast", "slow", "b", tag="panel-1"))
    table, figure, latency, summary = leaderboard_views(store)
    assert list(table["engine"]) == ["fast", "slow"]
    assert table["votes"].tolist() == [15, 15]
    assert figure is not None and "15 votes" in summary
    panel, _, _, panel_summary = leaderboard_views(store, "panel-1")
    assert list(panel["engine"])[0] == "slow" and "3 votes" in panel_summary
    empty = leaderboard_views(store, "nobody")
    assert empty[0].empty and "No votes yet for session nobody." in empty[3]
    store.close()


def test_a_page_load_recomputes_only_when_the_votes_changed(tmp_path: Path, monkeypatch) -> None:
    from speechlm_demo.ui import leaderboard_tab

    computed = []
    real = leaderboard_tab.leaderboard
    monkeypatch.setattr(leaderboard_tab, "_boards", leaderboard_tab._BoardCache())
    monkeypatch.setattr(leaderboard_tab, "leaderboard", lambda frame, **kw: computed.append(len(frame)) or real(frame, **kw))
    store = VoteStore(f"sqlite:///{tmp_path / 'votes.sqlite3'}")
    for _ in range(5):
        store.add(vote("fast", "slow", "a"))
    first = leaderboard_views(store)
    again = leaderboard_views(store)
    assert computed == [5] and again[0].equals(first[0])
    store.add(vote("fast", "slow", "b"))
    assert leaderboard_views(store)[0]["votes"].tolist() == [6, 6]
    leaderboard_views(store, "panel-1")
    assert computed == [5, 6, 0]
    store.close()
