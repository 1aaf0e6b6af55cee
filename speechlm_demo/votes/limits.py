"""Vote limits, keyed on the server-issued voter id and on the client address.

* a rate: at most ``per_voter`` votes a minute per voter and ``per_address`` per address (many people may
  share one address, so it is wider);
* a daily cap per voter (``$SPEECHLM_DAILY_VOTES``, default 200) and ten times that per address; the
  voter's count also comes from the store, so the cap holds across restarts and replicas;
* one vote per voter on the same input to the same two engines (see :class:`PairKey`), also checked in
  the store.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable

from ..env_settings import env_int

DAILY_ENV = "SPEECHLM_DAILY_VOTES"
DAILY_DEFAULT = 200
DAY_S = 24 * 3600.0
PairKey = tuple[str, str, str]  # input hash, then the two engine ids in sorted order
DAILY_MESSAGE = "You have reached today's vote limit. Thank you! Please come back tomorrow."


class VoteRefused(ValueError):
    """A vote that is not accepted; ``reason`` is a short code, the message is for the user."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def daily_cap() -> int:
    """``$SPEECHLM_DAILY_VOTES`` (votes per voter and day), default 200; 0 or less: no cap."""
    return env_int(DAILY_ENV, DAILY_DEFAULT)


class SlidingWindows:
    """Event times per key inside a sliding window (not thread-safe: the owner holds its lock). The vote limits
    and the voter-id issue cap (:mod:`.voter`) count with it."""

    def __init__(self, window_s: float) -> None:
        self.window_s = window_s
        self._times: dict[str, deque[float]] = {}

    def count(self, key: str, now: float) -> tuple[int, float]:
        """Events of ``key`` in the window, and the seconds until the oldest leaves it."""
        times = self._times.get(key)
        while times and now - times[0] > self.window_s:
            times.popleft()
        if not times:
            self._times.pop(key, None)
            return 0, 0.0
        return len(times), self.window_s - (now - times[0])

    def add(self, key: str, now: float) -> None:
        """Count an event of ``key`` at ``now``."""
        self._times.setdefault(key, deque()).append(now)

    def remove(self, key: str, at: float) -> None:
        """Take back the event of ``key`` counted at ``at``."""
        times = self._times.get(key)
        if times and at in times:
            times.remove(at)

    def purge(self, now: float) -> None:
        """Forget the keys without an event in the window."""
        for key in [k for k, times in self._times.items() if not times or now - times[-1] > self.window_s]:
            del self._times[key]

    def __len__(self) -> int:
        """How many keys are remembered."""
        return len(self._times)


class VoteLimits:
    """The limits of one process (the daily cap and the pair rule also consult the store)."""

    def __init__(
        self,
        *,
        per_voter: tuple[int, float] = (10, 60.0),
        per_address: tuple[int, float] = (30, 60.0),
        daily: int | None = None,
        clock: Callable[[], float],
    ) -> None:
        self.per_voter, self.per_address = per_voter, per_address
        self.daily = daily_cap() if daily is None else daily
        self.clock = clock
        self._voter_rate, self._address_rate = SlidingWindows(per_voter[1]), SlidingWindows(per_address[1])
        self._voter_day, self._address_day = SlidingWindows(DAY_S), SlidingWindows(DAY_S)
        self._pairs: dict[str, set[PairKey]] = {}
        self._lock = threading.Lock()

    def has_voted(self, voter: str, pair: PairKey) -> bool:
        """Whether this process saw ``voter`` vote on ``pair``."""
        with self._lock:
            return pair in self._pairs.get(voter, set())

    def take(self, voter: str, address: str, pair: PairKey, stored_today: Callable[[], int | None]) -> float:
        """Count a vote now, or raise :class:`VoteRefused` if it would break a limit; returns the time to pass
        to :meth:`give_back` if the vote is not kept after all. ``stored_today()`` is the voter's votes of the
        last 24 h in the store (None when it cannot be read)."""
        if self.daily > 0 and (stored_today() or 0) >= self.daily:
            raise VoteRefused("daily_cap", DAILY_MESSAGE)
        now = self.clock()
        with self._lock:
            if pair in self._pairs.get(voter, set()):
                raise VoteRefused("duplicate", "You already voted on these two replies to this turn.")
            for windows, key, (limit, _) in ((self._voter_rate, voter, self.per_voter), (self._address_rate, address, self.per_address)):
                count, wait = windows.count(key, now)
                if count >= limit:
                    raise VoteRefused("rate_limited", f"Too many votes in a short time; please wait {wait:.0f} s.")
            if self.daily > 0 and (self._voter_day.count(voter, now)[0] >= self.daily or self._address_day.count(address, now)[0] >= 10 * self.daily):
                raise VoteRefused("daily_cap", DAILY_MESSAGE)
            for windows, key in self._counters(voter, address):
                windows.add(key, now)
            self._pairs.setdefault(voter, set()).add(pair)
        return now

    def give_back(self, voter: str, address: str, pair: PairKey, at: float) -> None:
        """Undo :meth:`take` for a vote that was not kept."""
        with self._lock:
            for windows, key in self._counters(voter, address):
                windows.remove(key, at)
            self._pairs.get(voter, set()).discard(pair)

    def _counters(self, voter: str, address: str) -> list[tuple[SlidingWindows, str]]:
        return [(self._voter_rate, voter), (self._address_rate, address), (self._voter_day, voter), (self._address_day, address)]

    def purge(self) -> None:
        """Forget idle windows, and the pairs of voters idle for a day (the store still knows them)."""
        now = self.clock()
        with self._lock:
            for windows in (self._voter_rate, self._address_rate, self._voter_day, self._address_day):
                windows.purge(now)
            for voter in [v for v in self._pairs if self._voter_day.count(v, now)[0] == 0]:
                del self._pairs[voter]
