"""The leaderboard views read real votes (and judgements) back from a store."""

from __future__ import annotations

import uuid
from pathlib import Path

from speechlm_demo.ui.leaderboard_tab import leaderboard_views
from speechlm_demo.votes.store import VoteRecord, VoteStore


def vote(a: str, b: str, outcome: str, tag: str = "") -> VoteRecord:
    return VoteRecord(
        vote_id=uuid.uuid4().hex, round_id=uuid.uuid4().hex, voter_id="s", engine_a=a, engine_b=b, outcome=outcome,
        input_sha256="0" * 64, app_version="test", engine_version_a="1", engine_version_b="1",
        latency_a_ms=400.0, latency_b_ms=900.0, tag=tag,
    )


def test_views_rank_engines_and_filter_by_session(tmp_path: Path) -> None:
    store = VoteStore(f"sqlite:///{tmp_path / 'votes.sqlite3'}")
    for _ in range(12):
        store.add(vote("fast", "slow", "a"))
    for _ in range(3):
        store.add(vote("fast", "slow", "b", tag="panel-1"))
    table, figure, _latency, judges, boxes, scatter, summary = leaderboard_views(store)
    assert list(table["engine"]) == ["fast", "slow"]
    assert table["votes"].tolist() == [15, 15] and table["style_rating"].notna().all()
    assert figure is not None and scatter is not None and "15 votes" in summary
    assert boxes is None and judges.columns.tolist() == ["engine"]  # nothing judged yet
    panel, *_, panel_summary = leaderboard_views(store, "panel-1")
    assert list(panel["engine"])[0] == "slow" and "3 votes" in panel_summary
    empty = leaderboard_views(store, "nobody")
    assert empty[0].empty and "No votes yet for session nobody." in empty[-1]
    from_api = leaderboard_views(store, None, None)  # Gradio's API takes nulls for both inputs
    assert list(from_api[0]["engine"]) == ["fast", "slow"] and "15 votes" in from_api[-1]
    store.close()


def test_a_page_load_recomputes_only_when_the_votes_changed(tmp_path: Path, monkeypatch) -> None:
    from speechlm_demo.ui import leaderboard_tab

    computed = []
    real = leaderboard_tab.build_board
    monkeypatch.setattr(leaderboard_tab, "_boards", leaderboard_tab._BoardCache())
    monkeypatch.setattr(leaderboard_tab, "build_board", lambda frame, judged, **kw: computed.append(len(frame)) or real(frame, judged, **kw))
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


def test_views_show_judges_exclusions_and_flagged_voters(tmp_path: Path) -> None:
    from speechlm_demo.judges.records import JudgementStore

    store = VoteStore(f"sqlite:///{tmp_path / 'votes.sqlite3'}")
    records = JudgementStore(store)
    for index in range(9):
        record = vote("fast", "slow", "a" if index % 3 else "b")
        store.add(record)
        for side, engine, mos in (("a", "fast", 3.5), ("b", "slow", 2.5)):
            records.open(record.vote_id, side, engine, "Moshi" if index == 0 and side == "a" else "")
            records.finish(record.vote_id, side, {"status": "done", "dnsmos_ovrl": mos, "duration_s": 2.0 + index / 10})
    table, _, _, judges, boxes, _, summary = leaderboard_views(store)
    assert table["votes"].tolist() == [8, 8] and "1 vote(s) not counted: a reply named an engine" in summary
    assert judges.set_index("engine").loc["fast", "dnsmos_ovrl"] == 3.5 and boxes is not None
    assert "Kendall tau vs votes" in judges["engine"].tolist()
    store.close()


def ratings(store: VoteStore):
    """The ratings table of a page load (its figures closed)."""
    import matplotlib.pyplot as plt

    views = leaderboard_views(store)
    plt.close("all")
    return views[0]


def test_a_cached_load_reads_only_vote_ids_and_notices_added_and_voided_votes(tmp_path: Path, monkeypatch) -> None:
    import sqlalchemy as sa

    from speechlm_demo.ui import leaderboard_tab
    from speechlm_demo.votes.schema import votes_table

    monkeypatch.setattr(leaderboard_tab, "_boards", leaderboard_tab._BoardCache())
    store = VoteStore(f"sqlite:///{tmp_path / 'votes.sqlite3'}")
    read: list[list[str]] = []
    real_frame = store.frame
    monkeypatch.setattr(store, "frame", lambda columns=None, **kw: read.append(list(columns or [])) or real_frame(columns, **kw))
    kept = [vote("fast", "slow", "a") for _ in range(4)]
    for record in kept:
        store.add(record)
    assert ratings(store)["wins"].tolist() == [4, 0]
    read.clear()
    ratings(store)
    assert read == [["vote_id"]]  # a cache hit: the vote rows themselves are not read again
    with store.engine.begin() as conn:  # a vote voided, another added: the same count, other votes
        conn.execute(sa.delete(votes_table).where(votes_table.c.vote_id == kept[0].vote_id))
    store.add(vote("fast", "slow", "b"))
    table = ratings(store).set_index("engine")
    assert table.loc["fast", "wins"] == 3 and table.loc["slow", "wins"] == 1
    with store.engine.begin() as conn:  # voided only
        conn.execute(sa.delete(votes_table).where(votes_table.c.vote_id == kept[1].vote_id))
    assert ratings(store).set_index("engine").loc["fast", "votes"] == 3
    store.close()
