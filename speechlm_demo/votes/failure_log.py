"""Failures of a job retried on a timer (the pending votes' takeover of other hosts' spools), logged once while
they repeat.

Each failure has a ``what`` (what failed, e.g. ``taking over the pending-vote spool X``). Its first failure is
logged at ERROR with its traceback; the same failure again (the same exception type and error, file names
aside) only at DEBUG, so a retry every few seconds does not repeat one line forever. A different failure of
the same ``what`` is logged again. The job says what it did (:meth:`RepeatedFailures.succeeded`): only then is
the end of a failure logged at INFO as a recovery. A ``what`` a whole round did not try at all (the spool it
failed at is gone: another host took it over) did not recover: its failure is forgotten with an INFO line that
says so. A failure that goes on is recalled at WARNING every :data:`REMIND_EVERY` repeats (~10 minutes at a 5 s
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
        self._this_round: set[str] = set()

    def failed(self, what: str, exc: BaseException, message: str, *args: object) -> None:
        """``what`` failed with ``exc``: log ``message % args`` (ERROR, traceback) unless it failed so last time."""
        self._this_round.add(what)
        signature = _signature(exc)
        previous = self._streaks.get(what)
        if previous is not None and previous[0] == signature:
            times = previous[1] + 1
            self._streaks[what] = (signature, times)
            level = logging.WARNING if times % REMIND_EVERY == 0 else logging.DEBUG
            self.log.log(level, "%s failed again (%d times in a row): %s: %s", what, times, *signature)
            return
        self._streaks[what] = (signature, 1)
        self.log.error(message, *args, exc_info=exc)

    def succeeded(self, what: str) -> None:
        """``what`` was done: if it failed before, log that it no longer fails (INFO)."""
        self._this_round.add(what)
        streak = self._streaks.pop(what, None)
        if streak is not None:
            self.log.info("%s no longer fails (it failed %d time(s) in a row)", what, streak[1])

    def round_over(self, *, whole: bool = True) -> None:
        """One run of the job is over. A ``whole`` run tried everything there was: what failed before and was not
        tried in it (neither failed nor :meth:`succeeded`) has nothing left to do, e.g. another host took the spool
        over: its failure is forgotten, logged at INFO as such, not as a recovery. A run that broke off
        (``whole=False``) keeps them."""
        if whole:
            for what in [what for what in self._streaks if what not in self._this_round]:
                _, times = self._streaks.pop(what)
                self.log.info("%s: not tried any more, nothing is left to do (e.g. another host took the spool over); it had failed %d time(s) in a row", what, times)
        self._this_round.clear()
