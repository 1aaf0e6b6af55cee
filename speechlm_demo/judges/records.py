"""The ``judgements`` table: one row per voted reply (vote id, side), next to the ``votes`` table.

The row is written when the vote is stored, with the identity-leak verdict on the reply text (cheap, so a
leaking round is excluded from the blind ratings at once); the judge scores follow when the background
worker has computed them (``status`` goes from ``pending`` to ``done`` or ``failed``; ``skipped`` for a reply that is not the engine's own
``ok`` answer). The table is part of
the vote store's schema (:mod:`speechlm_demo.votes.schema`), made with it under the store's locking; reading
and writing here never create tables.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import sqlalchemy as sa

from ..votes.schema import SCORE_COLUMNS, judgements_table
from ..votes.store import VoteStore

__all__ = ["SCORE_COLUMNS", "JudgementStore", "judgements_table", "read_judgements"]

_FIXED = {"vote_id", "side", "engine", "created_at"}


class JudgementStore:
    """Reads and writes judgements in the vote store's database."""

    def __init__(self, store: VoteStore) -> None:
        self.store = store

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
        known = {c.name for c in judgements_table.columns} - _FIXED
        values = {k: v for k, v in values.items() if k in known}
        key = (judgements_table.c.vote_id == vote_id) & (judgements_table.c.side == side)
        self._write(lambda conn: conn.execute(judgements_table.update().where(key).values(**values)))

    def _write(self, action: Callable[[sa.Connection], Any]) -> None:
        with self.store.writing() as conn:  # StoreUnavailable when the database cannot be written
            action(conn)

    def frame(self) -> pd.DataFrame:
        """Every judgement as a DataFrame."""
        with self.store.reading() as conn:
            return pd.read_sql(self.store.select(judgements_table), conn)


def read_judgements(store: VoteStore) -> pd.DataFrame:
    """The judgements of ``store`` (an empty frame with the columns when there are none)."""
    return JudgementStore(store).frame()
