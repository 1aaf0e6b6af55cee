"""The ``judgements`` table: one row per voted reply (vote id, side), next to the ``votes`` table.

The row is written when the vote is stored, with the identity-leak verdict on the reply text (cheap, so a
leaking round is excluded from the blind ratings at once); the judge scores follow when the background
worker has computed them (``status`` goes from ``pending`` to ``done`` or ``failed``). Keeping the scores
in their own table leaves the vote rows immutable and lets a database without judges still take votes.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.exc import SQLAlchemyError

from ..votes.store import StoreUnavailable, VoteStore

log = logging.getLogger(__name__)

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
)


class JudgementStore:
    """Reads and writes judgements in the vote store's database."""

    def __init__(self, store: VoteStore) -> None:
        self.store = store
        try:
            metadata.create_all(store.engine)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"cannot create the judgements table in {store.describe()}: {exc}") from exc

    def open(self, vote_id: str, side: str, engine: str, identity_leak: str) -> None:
        """The row of one voted reply, judges pending (written again: the leak verdict is updated)."""
        row = {"vote_id": vote_id, "side": side, "engine": engine, "created_at": datetime.now(UTC), "status": "pending", "identity_leak": identity_leak}
        key = (judgements_table.c.vote_id == vote_id) & (judgements_table.c.side == side)

        def upsert(conn: sa.Connection) -> None:
            if not conn.execute(judgements_table.update().where(key).values(identity_leak=identity_leak)).rowcount:
                conn.execute(judgements_table.insert(), row)

        self._write(upsert)

    def finish(self, vote_id: str, side: str, values: dict[str, Any]) -> None:
        """Store the judge scores (and ``identity_leak`` when the ASR transcript added names) of a reply."""
        known = {c.name for c in judgements_table.columns} - {"vote_id", "side", "engine", "created_at"}
        values = {k: v for k, v in values.items() if k in known}
        key = (judgements_table.c.vote_id == vote_id) & (judgements_table.c.side == side)
        self._write(lambda conn: conn.execute(judgements_table.update().where(key).values(**values)))

    def _write(self, action: Any) -> None:
        try:
            with self.store._write_lock, self.store.engine.begin() as conn:
                action(conn)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"judgements not written to {self.store.describe()}: {exc}") from exc

    def frame(self) -> pd.DataFrame:
        """Every judgement as a DataFrame."""
        try:
            with self.store.engine.connect() as conn:
                return pd.read_sql(sa.select(judgements_table), conn)
        except SQLAlchemyError as exc:
            raise StoreUnavailable(f"judgements cannot be read from {self.store.describe()}: {exc}") from exc


def read_judgements(store: VoteStore) -> pd.DataFrame:
    """The judgements of ``store`` (an empty frame with the columns when there are none)."""
    return JudgementStore(store).frame()
