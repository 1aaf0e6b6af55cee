"""The vote database's schema, created in one place (:meth:`VoteStore._create_schema`, under the store's lock).

* ``votes``: one immutable row per blind vote (see :class:`speechlm_demo.votes.store.VoteRecord`), with
  the identity-leak verdict on the reply texts when it was cast;
* ``judgements``: one row per voted reply (vote id, side): the identity-leak verdict at once, the automatic
  judges' scores when the background worker has computed them (:mod:`speechlm_demo.judges.records`).
  Keeping the scores in their own table leaves the vote rows immutable.

Columns added later are nullable, so a store made by an older version gets them added when it opens.
"""

from __future__ import annotations

import sqlalchemy as sa

# The judges' figures stored per reply (the judgements table's score columns).
SCORE_COLUMNS: tuple[str, ...] = (
    "dnsmos_sig",
    "dnsmos_bak",
    "dnsmos_ovrl",
    "dnsmos_p808",
    "roundtrip_wer",
    "words_per_minute",
    "duration_s",
    "speech_s",
    "leading_silence_ms",
    "loudness_lufs",
    "peak_dbfs",
    "clipping",
    "voice_to_voice_ms",
    "engine_response_ms",
    "turn_detect_ms",
)

metadata = sa.MetaData()
votes_table = sa.Table(
    "votes",
    metadata,
    sa.Column("vote_id", sa.String(32), primary_key=True),
    sa.Column("round_id", sa.String(128), nullable=False),
    # the voter cookie's id (votes.voter); the stored column keeps its first name, session_id, so stores made
    # before the rename still read and write. Code and exports call it voter_id (the column's key).
    sa.Column("session_id", sa.String(128), nullable=False, index=True, key="voter_id"),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("engine_a", sa.String(64), nullable=False),
    sa.Column("engine_b", sa.String(64), nullable=False),
    sa.Column("outcome", sa.String(8), nullable=False),
    sa.Column("input_sha256", sa.String(64), nullable=False),
    sa.Column("tag", sa.String(128), nullable=False, default=""),
    sa.Column("status_a", sa.String(16), nullable=False),
    sa.Column("status_b", sa.String(16), nullable=False),
    sa.Column("reply_text_a", sa.Text, nullable=False, default=""),
    sa.Column("reply_text_b", sa.Text, nullable=False, default=""),
    sa.Column("user_text", sa.Text, nullable=False, default=""),
    sa.Column("latency_a_ms", sa.Float, nullable=True),
    sa.Column("latency_b_ms", sa.Float, nullable=True),
    sa.Column("latency_from", sa.String(32), nullable=True),  # the mark both latencies are measured from
    sa.Column("timeline_a", sa.Text, nullable=False, default="{}"),
    sa.Column("timeline_b", sa.Text, nullable=False, default="{}"),
    sa.Column("app_version", sa.String(64), nullable=False),
    sa.Column("engine_version_a", sa.String(128), nullable=False),
    sa.Column("engine_version_b", sa.String(128), nullable=False),
    sa.Column("audio_dir", sa.Text, nullable=True),
    # the names the reply texts gave away, judged as the vote was cast, so a vote spooled while the store was
    # down keeps its verdict ("" none; NULL in votes cast before the column: their verdict is in judgements)
    sa.Column("identity_leak", sa.Text, nullable=True),
    sa.UniqueConstraint("round_id", name="uq_votes_round"),
    sa.CheckConstraint("outcome IN ('a', 'b', 'tie', 'both_bad')", name="ck_votes_outcome"),
    sa.CheckConstraint("engine_a <> engine_b", name="ck_votes_two_engines"),
)


judgements_table = sa.Table(
    "judgements",
    metadata,
    sa.Column("vote_id", sa.String(32), primary_key=True),
    sa.Column("side", sa.String(1), primary_key=True),
    sa.Column("engine", sa.String(64), nullable=False, index=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status", sa.String(8), nullable=False, default="pending"),
    sa.Column("identity_leak", sa.Text, nullable=False, default=""),
    sa.Column("asr_text", sa.Text, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    *(sa.Column(name, sa.Float, nullable=True) for name in SCORE_COLUMNS),
    # the mark voice_to_voice_ms is measured from (timeline.LATENCY_FROM for the judges of today; NULL in
    # rows judged before it was recorded, whose figure started at the turn layer's end of speech)
    sa.Column("voice_to_voice_from", sa.String(32), nullable=True),
)
