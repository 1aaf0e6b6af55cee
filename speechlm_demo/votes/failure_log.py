"""Failures of a job retried on a timer (the pending votes' takeover of other hosts' spools), logged once while
they repeat.

Each failure has a ``what`` (what failed, e.g. ``taking over the pending-vote spool X``). Its first failure is
logged at ERROR with its traceback; the same failure again (the same exception type and error, file names
aside) only at DEBUG, so a retry every few seconds does not repeat one line forever. A different failure of
the same ``what`` is logged again. The job says what it did (:meth:`RepeatedFailures.succeeded`): only then is
the end of a failure logged at INFO as a recovery, when the round is over and nothing of the same ``what``
failed in it (two files can be one ``what``: a spool and a stale claim on it). A ``what`` a whole round did not
try at all (the spool it failed at is gone: another host took it over) did not recover: its failure is
forgotten with an INFO line that says so. A failure that goes on is recalled at WARNING every :data:`REMIND_EVERY` repeats (~10 minutes at a 5 s
retry), so one ERROR line that scrolled away is not all a stuck job ever says.
"""

from __future__ import annotations

import logging

REMIND_EVERY = 120


def _signature(exc: BaseException) -> tuple[str, str]:
    """What makes two failures the same: the exception's type and error, without the file names an OSError
    carries (a claim's name changes at every try)."""
    if isinstance(exc, OSError) and exc.strerror:
        return type(exc).__name__, f"[{exc.errno}] {exc.strerror}"
    return type(exc).__name__, str(exc)


class RepeatedFailures:
    """What failed in the job's current failing streaks, and how often in a row."""

    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self._streaks: dict[str, tuple[tuple[str, str], int]] = {}  # what -> (the failure, how often in a row)
        self._failed_now: set[str] = set()  # what failed in the current round
        self._done_now: set[str] = set()  # what was done in the current round

    def failed(self, what: str, exc: BaseException, message: str, *args: object) -> None:
        """``what`` failed with ``exc``: log ``message % args`` (ERROR, traceback) unless it failed so last time
        (a ``what`` that fails twice the same way in one round counts once)."""
        signature = _signature(exc)
        previous = self._streaks.get(what)
        if previous is not None and previous[0] == signature:
            if what in self._failed_now:
                return
            self._failed_now.add(what)
            times = previous[1] + 1
            self._streaks[what] = (signature, times)
            level = logging.WARNING if times % REMIND_EVERY == 0 else logging.DEBUG
            self.log.log(level, "%s failed again (%d times in a row): %s: %s", what, times, *signature)
            return
        self._failed_now.add(what)
        self._streaks[what] = (signature, 1)
        self.log.error(message, *args, exc_info=exc)

    def succeeded(self, what: str) -> None:
        """``what`` was done: when the round is over, if it failed before and nothing of it failed in this round,
        log that it no longer fails (INFO)."""
        self._done_now.add(what)

    def round_over(self, *, whole: bool = True) -> None:
        """One run of the job is over. What was done and did not also fail in it recovered (INFO). A ``whole`` run
        tried everything there was: what failed before and was not tried in it (neither failed nor
        :meth:`succeeded`) has nothing left to do, e.g. another host took the spool over: its failure is
        forgotten, logged at INFO as such, not as a recovery. A run that broke off (``whole=False``) keeps them."""
        for what in [what for what in self._streaks if what in self._done_now and what not in self._failed_now]:
            _, times = self._streaks.pop(what)
            self.log.info("%s no longer fails (it failed %d time(s) in a row)", what, times)
        if whole:
            tried = self._failed_now | self._done_now
            for what in [what for what in self._streaks if what not in tried]:
                _, times = self._streaks.pop(what)
                self.log.info("%s: not tried any more, nothing is left to do (e.g. another host took the spool over); it had failed %d time(s) in a row", what, times)
        self._failed_now.clear()
        self._done_now.clear()
