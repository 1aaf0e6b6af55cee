"""One stored vote: :class:`VoteRecord`, its row in the ``votes`` table and its line in the pending-vote spool."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from .schema import votes_table

OUTCOMES: tuple[str, ...] = ("a", "b", "tie", "both_bad")
STORED_NAMES = {c.key: c.name for c in votes_table.columns if c.key != c.name}  # code name -> database name


def storable_text(text: str) -> str:
    """``text`` as every store can keep it: a surrogate pair (an emoji split across two JSON-escaped stream
    chunks stays two surrogates in Python) joined into its character, a lone surrogate and NUL (which
    SQLite's and PostgreSQL's drivers refuse) replaced with U+FFFD."""
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return joined.replace("\x00", "\ufffd")


@dataclass
class VoteRecord:
    """Everything stored for one vote. ``timeline_a/b`` are :meth:`Timeline.to_dict` documents."""

    vote_id: str
    round_id: str
    voter_id: str
    engine_a: str
    engine_b: str
    outcome: str
    input_sha256: str
    app_version: str
    engine_version_a: str
    engine_version_b: str
    status_a: str = "ok"
    status_b: str = "ok"
    reply_text_a: str = ""
    reply_text_b: str = ""
    user_text: str = ""
    latency_a_ms: float | None = None
    latency_b_ms: float | None = None
    latency_from: str | None = None
    timeline_a: dict[str, Any] = field(default_factory=dict)
    timeline_b: dict[str, Any] = field(default_factory=dict)
    tag: str = ""
    audio_dir: str | None = None
    identity_leak: str = ""  # names the reply texts gave away ("" none): the vote is kept but not counted
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {OUTCOMES}, not {self.outcome!r}")
        if self.engine_a == self.engine_b:
            raise ValueError("a vote compares two different engines")
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, str):
                setattr(self, item.name, storable_text(value))

    def to_row(self) -> dict[str, Any]:
        """Column values for the ``votes`` table."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        row["timeline_a"] = json.dumps(self.timeline_a, sort_keys=True)
        row["timeline_b"] = json.dumps(self.timeline_b, sort_keys=True)
        return row

    def to_json(self) -> str:
        """One JSON line (for the pending-vote spool)."""
        return json.dumps(self.to_row() | {"created_at": self.created_at.isoformat()}, sort_keys=True)

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> VoteRecord:
        """Inverse of :meth:`to_row` (also accepts :meth:`to_json` documents, and rows or spooled votes that
        still say ``session_id`` for ``voter_id``)."""
        row = {key: row[name] for key, name in STORED_NAMES.items() if key not in row and name in row} | dict(row)
        values = {f.name: row[f.name] for f in fields(cls) if f.name in row}
        for name in ("timeline_a", "timeline_b"):
            if isinstance(values.get(name), str):
                values[name] = json.loads(values[name])
        values["identity_leak"] = values.get("identity_leak") or ""  # NULL: cast before the column existed
        created = values.get("created_at")
        if isinstance(created, str):
            created = datetime.fromisoformat(created)
        if isinstance(created, datetime) and created.tzinfo is None:
            created = created.replace(tzinfo=UTC)  # SQLite drops the zone; everything is stored in UTC
        values["created_at"] = created
        return cls(**values)
