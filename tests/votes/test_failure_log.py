"""RepeatedFailures: a failure retried on a timer is logged once while it repeats, again when it changes; its end
is told as a recovery only when the job did it, otherwise as what it is."""

from __future__ import annotations

import logging

import pytest

from speechlm_demo.votes.failure_log import REMIND_EVERY, RepeatedFailures


def test_the_same_failure_again_is_quiet_a_different_one_is_logged_and_the_end_is_told(caplog: pytest.LogCaptureFixture) -> None:
    failures = RepeatedFailures(logging.getLogger("test.failures"))
    tries = [
        PermissionError(13, "Permission denied", "a", None, "a.claimed-1"),
        PermissionError(13, "Permission denied", "a", None, "a.claimed-2"),  # the same failure: other file names
        OSError(30, "Read-only file system", "a"),  # a different one
        OSError(30, "Read-only file system", "a"),
    ]
    with caplog.at_level(logging.DEBUG, logger="test.failures"):
        for exc in tries:
            failures.failed("claiming a", exc, "cannot claim %s", "a")
            failures.failed("claiming b", ValueError("odd"), "cannot claim %s", "b")
            failures.round_over()
        failures.succeeded("claiming a")  # a round in which a works and b is not tried (its spool is gone)
        failures.round_over()
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [m for level, m in levels if level == logging.ERROR] == ["cannot claim a", "cannot claim b", "cannot claim a"]
    assert sum(level == logging.DEBUG for level, _ in levels) == 5
    assert [m for level, m in levels if level == logging.INFO] == [
        "claiming a no longer fails (it failed 2 time(s) in a row)",
        "claiming b: not tried any more, nothing is left to do (e.g. another host took the spool over); it had failed 4 time(s) in a row",
    ]


def test_a_round_that_broke_off_forgets_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """What a broken-off round did not reach may still be there: its failure is neither ended nor forgotten."""
    failures = RepeatedFailures(logging.getLogger("test.failures"))
    with caplog.at_level(logging.DEBUG, logger="test.failures"):
        failures.failed("claiming a", ValueError("odd"), "cannot claim %s", "a")
        failures.round_over()
        failures.round_over(whole=False)
        failures.failed("claiming a", ValueError("odd"), "cannot claim %s", "a")
    assert [r.levelno for r in caplog.records] == [logging.ERROR, logging.DEBUG]


def test_a_failure_that_goes_on_is_recalled_at_warning_now_and_then(caplog: pytest.LogCaptureFixture) -> None:
    failures = RepeatedFailures(logging.getLogger("test.failures"))
    with caplog.at_level(logging.DEBUG, logger="test.failures"):
        for _ in range(2 * REMIND_EVERY + 1):
            failures.failed("claiming a", PermissionError(13, "Permission denied"), "cannot claim %s", "a")
            failures.round_over()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.levelno for r in caplog.records].count(logging.ERROR) == 1
    assert warnings == [
        f"claiming a failed again ({n} times in a row): PermissionError: [13] Permission denied" for n in (REMIND_EVERY, 2 * REMIND_EVERY)
    ]


@pytest.mark.parametrize("done_first", [True, False], ids=["done-then-failed", "failed-then-done"])
def test_one_what_done_for_one_file_and_failed_for_another_in_a_round_has_not_recovered(
    done_first: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """A spool and a stale claim on it are one ``what``: one taken over, the other not, is still a failure, counted
    once in the round; no "no longer fails" line, no second ERROR."""
    failures = RepeatedFailures(logging.getLogger("test.failures"))
    denied = PermissionError(13, "Permission denied")
    with caplog.at_level(logging.DEBUG, logger="test.failures"):
        failures.failed("taking over s", denied, "cannot take over %s", "s")
        failures.failed("taking over s", denied, "cannot take over %s", "s.claimed-1")
        failures.round_over()
        for _ in range(2):
            if done_first:
                failures.succeeded("taking over s")
            failures.failed("taking over s", denied, "cannot take over %s", "s")
            if not done_first:
                failures.succeeded("taking over s")
            failures.round_over()
        failures.succeeded("taking over s")
        failures.round_over()
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert levels == [
        (logging.ERROR, "cannot take over s"),
        (logging.DEBUG, "taking over s failed again (2 times in a row): PermissionError: [13] Permission denied"),
        (logging.DEBUG, "taking over s failed again (3 times in a row): PermissionError: [13] Permission denied"),
        (logging.INFO, "taking over s no longer fails (it failed 3 time(s) in a row)"),
    ]
