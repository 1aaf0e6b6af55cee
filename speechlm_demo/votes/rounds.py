"""Blind A/B rounds: pick two engines, hide which is which, gate the vote on listening, store the vote.

Lifecycle: :meth:`BlindArena.start_round` (a weighted pair, sides shuffled, an unguessable round id signed
with HMAC and bound to the voter: the server-issued id of :mod:`.voter`) -> :meth:`BlindArena.record_replies`
(or :meth:`BlindArena.run_round`, which runs the comparison) -> :meth:`BlindArena.mark_listened` per side ->
:meth:`BlindArena.submit_vote`, which refuses unknown, expired, tampered, duplicate, premature, rate-limited
and over-the-daily-cap votes (:mod:`.limits`) with a :class:`VoteRefused` message, and stores the vote in one
transaction. When the store is down the vote waits in :class:`PendingVotes` (spooled to disk) and is retried;
if it cannot be kept on disk either the user gets a :class:`StoreUnavailable` error: a vote is acknowledged
only once it is durable. Nothing is stored twice. A round that will not be voted on (a rejected draw, a failed
run) is dropped at once with :meth:`BlindArena.discard`; the others leave memory when they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import random
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .. import __version__
from ..audio import encode_wav
from ..catalog import EngineEntry
from ..compare import Comparison, SideResult, compare
from ..env_settings import env_flag
from ..judges.identity import leak_label, leak_names
from ..timeline import LATENCY_FROM
from .limits import DAY_S, VoteLimits, VoteRefused
from .pairs import audio_sha256, engine_version, pick_pair, playable_sides
from .pending import PendingVotes, host_spool
from .store import OUTCOMES, DuplicateVote, StoreUnavailable, VoteRecord, VoteStore, data_dir
from .voter import signing_secret

if TYPE_CHECKING:
    from ..engines.base import Engine

log = logging.getLogger(__name__)

SAVE_AUDIO_ENV = "SPEECHLM_SAVE_AUDIO"
Side = Literal["a", "b"]


@dataclass
class BlindRound:
    """One pair of anonymous replies shown to one voter. ``engines`` is in side order (A, B)."""

    round_id: str
    voter_id: str
    engines: tuple[EngineEntry, EngineEntry]
    created: float
    audio: np.ndarray
    sample_rate: int
    input_sha256: str
    versions: tuple[str, str]
    tag: str = ""
    replies: Comparison | None = None
    listened: set[str] = field(default_factory=set)
    play_started: dict[str, float] = field(default_factory=dict)
    state: Literal["open", "voting", "voted"] = "open"

    @property
    def pair_key(self) -> tuple[str, str, str]:
        """What "one vote per pair" means: the same input to the same two engines (in either order)."""
        first, second = sorted((self.engines[0].id, self.engines[1].id))
        return self.input_sha256, first, second


@dataclass(frozen=True)
class VoteReceipt:
    """The stored (or queued) vote, with the engines revealed."""

    vote_id: str
    outcome: str
    engine_a: str
    engine_b: str
    queued: bool
    message: str
    identity_leak: tuple[str, ...] = ()  # names a reply gave away: the vote is kept but not counted in the ratings


class BlindArena:
    """Blind rounds of every voter of this process, and the way their votes reach the store."""

    def __init__(
        self,
        store: VoteStore,
        candidates: Callable[[], Sequence[EngineEntry]],
        *,
        pending: PendingVotes | None = None,
        secret: bytes | None = None,
        ttl_s: float = 1800.0,
        rate_limit: tuple[int, float] = (10, 60.0),
        address_limit: tuple[int, float] = (30, 60.0),
        daily_cap: int | None = None,
        min_listen_s: float = 3.0,
        save_audio: bool | None = None,
        audio_dir: Path | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        on_vote: Callable[[VoteRecord, Comparison | None], Sequence[str]] | None = None,
        leak_check: Callable[[VoteRecord], Sequence[str]] | None = None,
    ) -> None:
        self.store = store
        self.candidates = candidates
        # One spool per host (replicas sharing a data volume must not rewrite each other's pending votes); the
        # spools of hosts gone (a container recreated under a new name) are taken over.
        self.pending = pending if pending is not None else PendingVotes(store, host_spool(data_dir()), adopt=True)
        self._secret = secret or signing_secret()
        self.ttl_s = ttl_s
        self.min_listen_s = min_listen_s
        self.save_audio = env_flag(SAVE_AUDIO_ENV, False) if save_audio is None else save_audio
        self.audio_dir = audio_dir or data_dir() / "audio"
        self.rng = rng or random.SystemRandom()
        self.clock = clock
        self.on_vote = on_vote  # after a vote is kept: judge its replies; returns the names they gave away
        self.leak_check = leak_check  # before a vote is kept: the names its reply texts gave away, kept with it
        self._rounds: dict[str, BlindRound] = {}
        self.limits = VoteLimits(per_voter=rate_limit, per_address=address_limit, daily=daily_cap, clock=clock)
        self._lock = threading.Lock()

    # -- round ids ---------------------------------------------------------------------------------
    def _sign(self, body: str, voter_id: str) -> str:
        mac = hmac.new(self._secret, f"{body}|{voter_id}".encode(), hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(mac).decode().rstrip("=")

    def _new_id(self, voter_id: str, created: float) -> str:
        body = f"{secrets.token_urlsafe(12)}.{int(created * 1000):x}"
        return f"{body}.{self._sign(body, voter_id)}"

    def _check_id(self, round_id: str, voter_id: str) -> BlindRound:
        """The round, or :class:`VoteRefused` (tampered, expired, unknown). Call with the lock held."""
        body, _, signature = str(round_id).rpartition(".")
        expected = self._sign(body, voter_id).encode()
        if not body or not hmac.compare_digest(signature.encode("utf-8", "replace"), expected):
            raise VoteRefused("tampered", "This round id is not valid for your session; nothing was recorded.")
        created = int(body.rpartition(".")[2], 16) / 1000
        if self.clock() - created > self.ttl_s:
            self._rounds.pop(round_id, None)
            raise VoteRefused("expired", "This round has expired; please start a new one.")
        found = self._rounds.get(round_id)
        if found is None:
            raise VoteRefused("unknown", "This round is unknown here (the app may have restarted); please start a new one.")
        return found

    # -- lifecycle ---------------------------------------------------------------------------------
    def start_round(
        self,
        voter_id: str,
        audio: np.ndarray,
        sample_rate: int,
        *,
        tag: str = "",
        among: Sequence[EngineEntry] | None = None,
    ) -> BlindRound:
        """A new round for ``voter_id`` on this recorded turn, its pair drawn from ``among`` (default: the
        live candidates). Raises :class:`NotEnoughEngines`."""
        pair = pick_pair(self.candidates() if among is None else among, self.rng)
        now = self.clock()
        pcm = np.ascontiguousarray(audio, dtype=np.float32)
        versions = (engine_version(pair[0]), engine_version(pair[1]))
        blind = BlindRound(self._new_id(voter_id, now), voter_id, pair, now, pcm, sample_rate, audio_sha256(pcm, sample_rate), versions, tag)
        with self._lock:
            self._purge(now)
            self._rounds[blind.round_id] = blind
        log.debug("round %s: %s vs %s", blind.round_id[:8], pair[0].id, pair[1].id)
        return blind

    def record_replies(self, round_id: str, voter_id: str, replies: Comparison) -> None:
        """Attach both sides' replies (``replies.a`` is side A) to the round."""
        with self._lock:
            self._check_id(round_id, voter_id).replies = replies

    def run_round(
        self,
        round_id: str,
        voter_id: str,
        load: Callable[[str], Engine],
        on_result: Callable[[str, SideResult], None] | None = None,
        **compare_options: float,
    ) -> Comparison:
        """Run the round's turn through both engines (``load`` = e.g. ``registry.get``) and record the replies.

        ``on_result(side, result)`` hears of each side as soon as it is done (see :func:`compare`)."""
        with self._lock:
            blind = self._check_id(round_id, voter_id)
        a, b = (blind.engines[0].id, blind.engines[1].id)
        replies = compare(lambda: load(a), lambda: load(b), blind.audio, blind.sample_rate, on_result=on_result, **compare_options)
        replies.a.engine_id, replies.b.engine_id = a, b  # known even if an engine failed to load
        self.record_replies(round_id, voter_id, replies)
        return replies

    def start_listening(self, round_id: str, voter_id: str, side: Side) -> float:
        """The user pressed play on ``side``; returns the seconds of listening before it counts as heard."""
        with self._lock:
            blind = self._listenable(round_id, voter_id, side)
            blind.play_started.setdefault(side, self.clock())
            return self._needed_s(blind, side)

    def mark_listened(self, round_id: str, voter_id: str, side: Side) -> bool:
        """``side`` has been heard (refused as ``too_early`` unless played for the minimum listen time, or to
        its end if shorter); returns whether the round is now open for the vote (every playable reply heard,
        no vote yet)."""
        with self._lock:
            blind = self._listenable(round_id, voter_id, side)
            needed = self._needed_s(blind, side)
            started = blind.play_started.get(side)
            if needed > 0 and (started is None or self.clock() - started < needed):
                raise VoteRefused("too_early", f"Keep listening to {side.upper()} a little longer.")
            blind.listened.add(side)
            assert blind.replies is not None
            return blind.state == "open" and playable_sides(blind.replies) <= blind.listened

    def has_voted(self, voter_id: str, blind: BlindRound) -> bool:
        """Whether this voter already voted on the same input to the same pair of engines (here or, as the
        store says, on another replica or before a restart)."""
        return self.limits.has_voted(voter_id, blind.pair_key) or self._stored_pair(voter_id, blind)

    def get_round(self, round_id: str, voter_id: str) -> BlindRound:
        """The round behind a (signed) round id; raises :class:`VoteRefused` like a vote would."""
        with self._lock:
            return self._check_id(round_id, voter_id)

    def submit_vote(self, round_id: str, voter_id: str, outcome: str, *, address: str = "") -> VoteReceipt:
        """Record the vote of ``voter_id`` (a server-issued id) from ``address``; raises :class:`VoteRefused`
        or :class:`StoreUnavailable` (the vote was not kept: the user is told)."""
        if outcome not in OUTCOMES:
            raise VoteRefused("bad_outcome", f"unknown choice {outcome!r}")
        with self._lock:
            blind = self._check_id(round_id, voter_id)
            self._check_votable(blind)
            blind.state = "voting"
        try:
            if self._stored_pair(voter_id, blind):
                raise VoteRefused("duplicate", "You already voted on these two replies to this turn.")
            taken = self.limits.take(voter_id, address, blind.pair_key, lambda: self._stored_today(voter_id))
        except VoteRefused:
            blind.state = "open"
            raise
        try:
            record = self._record(blind, outcome)
            record.identity_leak = self._leaks(record)
            queued = self._write(record)
        except DuplicateVote:
            blind.state = "voted"
            raise VoteRefused("duplicate", "You already voted on this round.") from None
        except BaseException:
            blind.state = "open"  # nothing was kept: the user may vote again
            self.limits.give_back(voter_id, address, blind.pair_key, taken)
            raise
        blind.state = "voted"
        message = "Thanks! The vote database is busy or down: your vote is kept on disk and will be stored as soon as it can be." if queued else "Thanks, vote recorded."
        leaked = tuple(leak_names(record.identity_leak, *self._after_vote(record, blind)))
        if leaked:
            message += f" A reply named {', '.join(leaked)}, which gives an engine away: your vote is kept but not counted in the blind ratings."
        return VoteReceipt(record.vote_id, outcome, record.engine_a, record.engine_b, queued, message, leaked)

    def discard(self, round_id: str, voter_id: str) -> None:
        """Forget an open round of ``voter_id`` that will not be voted on: a draw rejected, a run that failed, a
        round the page replaced unvoted. A round with a vote (being stored, or stored and still to be revealed) is
        kept until it expires."""
        with self._lock:
            blind = self._rounds.get(round_id)
            if blind is not None and blind.voter_id == voter_id and blind.state == "open":
                del self._rounds[round_id]

    def close(self) -> None:
        """Stop retrying in the background (votes still pending stay in the spool for the next start)."""
        self.pending.close()

    # -- internals ---------------------------------------------------------------------------------
    def _listenable(self, round_id: str, voter_id: str, side: Side) -> BlindRound:
        """The round, if ``side`` is a side and its replies are in. Call with the lock held."""
        if side not in ("a", "b"):
            raise VoteRefused("bad_side", f"unknown side {side!r}")
        blind = self._check_id(round_id, voter_id)
        if blind.replies is None:
            raise VoteRefused("not_ready", "Both replies are not ready yet.")
        return blind

    def _needed_s(self, blind: BlindRound, side: str) -> float:
        assert blind.replies is not None
        result = blind.replies.sides[side]
        if side not in playable_sides(blind.replies):
            return 0.0
        return min(self.min_listen_s, 0.9 * len(result.audio) / result.sample_rate)

    def _check_votable(self, blind: BlindRound) -> None:
        if blind.state != "open":
            raise VoteRefused("duplicate", "You already voted on this round.")
        if blind.replies is None:
            raise VoteRefused("not_ready", "Both replies are not ready yet.")
        if not playable_sides(blind.replies) <= blind.listened:
            raise VoteRefused("not_listened", "Please listen to both replies before voting.")

    def _stored_pair(self, voter_id: str, blind: BlindRound) -> bool:
        try:
            return self.store.has_pair_vote(voter_id, *blind.pair_key)
        except StoreUnavailable:
            return False  # this process's own record of the voter still applies

    def _stored_today(self, voter_id: str) -> int | None:
        try:
            return self.store.count(voter_id, since_s=DAY_S)
        except StoreUnavailable:
            return None

    def _record(self, blind: BlindRound, outcome: str) -> VoteRecord:
        assert blind.replies is not None
        a, b = blind.replies.a, blind.replies.b
        vote_id = uuid.uuid4().hex
        return VoteRecord(
            vote_id=vote_id,
            round_id=blind.round_id,
            voter_id=blind.voter_id,
            engine_a=blind.engines[0].id,
            engine_b=blind.engines[1].id,
            outcome=outcome,
            input_sha256=blind.input_sha256,
            app_version=__version__,
            engine_version_a=blind.versions[0],
            engine_version_b=blind.versions[1],
            status_a=a.status,
            status_b=b.status,
            reply_text_a=a.reply_text,
            reply_text_b=b.reply_text,
            user_text=a.user_text or b.user_text,
            latency_a_ms=a.latency_ms,
            latency_b_ms=b.latency_ms,
            latency_from=LATENCY_FROM if a.latency_ms is not None or b.latency_ms is not None else None,
            timeline_a=a.timeline,
            timeline_b=b.timeline,
            tag=blind.tag,
            audio_dir=self._try_save_audio(blind, vote_id) if self.save_audio else None,
        )

    def _leaks(self, record: VoteRecord) -> str:
        """The leak verdict stored with the vote ("" none); a failing check costs the verdict, never the vote."""
        if self.leak_check is None:
            return ""
        try:
            return leak_label(leak_names(*self.leak_check(record)))
        except Exception:
            log.exception("the leak check failed for vote %s", record.vote_id)
            return ""

    def _after_vote(self, record: VoteRecord, blind: BlindRound) -> tuple[str, ...]:
        """Run the vote hook; a failing hook costs the judgement, never the vote."""
        if self.on_vote is None:
            return ()
        try:
            return tuple(self.on_vote(record, blind.replies))
        except Exception:
            log.exception("the vote hook failed for vote %s", record.vote_id)
            return ()

    def _try_save_audio(self, blind: BlindRound, vote_id: str) -> str | None:
        """Save the audio if configured; a full disk costs the audio, never the vote."""
        try:
            return self._save_audio(blind, vote_id)
        except OSError:
            log.exception("audio of vote %s not saved; the vote is stored without it", vote_id)
            return None

    def _save_audio(self, blind: BlindRound, vote_id: str) -> str:
        """Write the input and both replies as WAV before the vote row references them."""
        assert blind.replies is not None
        folder = self.audio_dir / vote_id
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "input.wav").write_bytes(encode_wav(blind.audio, blind.sample_rate))
        for side, result in blind.replies.sides.items():
            if len(result.audio):
                (folder / f"{side}.wav").write_bytes(encode_wav(result.audio, result.sample_rate))
        return str(folder)

    def _write(self, record: VoteRecord) -> bool:
        """Store now, or queue for retry (returns True when queued)."""
        try:
            self.store.add(record)
            return False
        except StoreUnavailable as exc:
            log.error("vote %s not stored yet: %s", record.vote_id, exc)
            self.pending.add(record)  # raises StoreUnavailable when it cannot be kept either
            return True

    def _purge(self, now: float) -> None:
        """Forget expired rounds (the dict is in creation order) and idle limit windows."""
        while self._rounds:
            oldest = next(iter(self._rounds.values()))
            if now - oldest.created <= self.ttl_s:
                break
            del self._rounds[oldest.round_id]
        self.limits.purge()
