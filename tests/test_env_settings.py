"""Environment settings are read one way everywhere: the accepted spellings, and a bad value falls back with
one warning that names the variable (instead of a traceback, a silent default or a flag that means its opposite)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from speechlm_demo import catalog, env_settings, rtc, rtc_idle, rtc_jitter, settings_memo
from speechlm_demo.engines.cascade import weights
from speechlm_demo.env_settings import ACCEPTED, CACHE_ENV, cache_dir, env_flag, env_int
from speechlm_demo.judges.background import JUDGES_ENV, judges_enabled
from speechlm_demo.server import parse_app_args
from speechlm_demo.votes import limits, voter

ROOT = Path(__file__).resolve().parent.parent

NAME = "SPEECHLM_TEST_SETTING"


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Each test starts with no value warned about yet (the module warns once per variable and value)."""
    monkeypatch.setattr(env_settings, "_warned", set())
    caplog.set_level(logging.WARNING)


def warnings_about(caplog: pytest.LogCaptureFixture, name: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and name in r.getMessage()]


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", "True", "yes", "Yes", "on", "ON", " on ", "\ttrue\n"])
def test_a_flag_is_on_in_every_accepted_spelling(raw: str, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(NAME, raw)
    assert env_flag(NAME, False) is True
    assert not caplog.records


@pytest.mark.parametrize("raw", ["0", "false", "FALSE", "no", "No", "off", "OFF", " off "])
def test_a_flag_is_off_in_every_accepted_spelling(raw: str, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(NAME, raw)
    assert env_flag(NAME, True) is False
    assert not caplog.records


def test_an_unset_or_blank_flag_is_its_default(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.delenv(NAME, raising=False)
    assert env_flag(NAME, True) is True and env_flag(NAME, False) is False
    monkeypatch.setenv(NAME, "  ")
    assert env_flag(NAME, True) is True and env_flag(NAME, False) is False
    assert not caplog.records


@pytest.mark.parametrize("raw", ["maybe", "2", "-1", "enabled", "y", "tru"])
def test_a_garbled_flag_is_its_default_with_one_warning(raw: str, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(NAME, raw)
    assert env_flag(NAME, True) is True
    (message,) = warnings_about(caplog, NAME)
    assert repr(raw) in message and ACCEPTED in message and "using the default, on" in message
    assert env_flag(NAME, True) is True  # read again (every session does): not warned again
    assert len(warnings_about(caplog, NAME)) == 1
    monkeypatch.setenv(NAME, raw + "!")  # another bad value is a new mistake: warned
    assert env_flag(NAME, False) is False
    assert len(warnings_about(caplog, NAME)) == 2 and "using the default, off" in caplog.records[-1].getMessage()


@pytest.mark.parametrize(("raw", "value"), [("12", 12), (" 12 ", 12), ("+3", 3), ("-4", -4), ("0", 0), ("1_000", 1000)])
def test_a_whole_number_is_read(raw: str, value: int, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(NAME, raw)
    assert env_int(NAME, 7) == value
    assert not caplog.records


@pytest.mark.parametrize("raw", ["abc", "3.5", "1e3", "eight", "0x10"])
def test_a_garbled_number_is_its_default_with_one_warning(raw: str, monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(NAME, raw)
    assert env_int(NAME, 7) == 7 and env_int(NAME, 7) == 7
    (message,) = warnings_about(caplog, NAME)
    assert repr(raw) in message and "not a whole number" in message and "7" in message


def test_a_number_below_the_minimum_is_the_minimum_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.delenv(NAME, raising=False)
    assert env_int(NAME, 7, minimum=1) == 7
    monkeypatch.setenv(NAME, "")
    assert env_int(NAME, 7, minimum=1) == 7 and not caplog.records
    monkeypatch.setenv(NAME, "-2")
    assert env_int(NAME, 7, minimum=1) == 1
    (message,) = warnings_about(caplog, NAME)
    assert "-2" in message and "minimum" in message
    monkeypatch.setenv(NAME, "1")
    assert env_int(NAME, 7, minimum=1) == 1 and len(caplog.records) == 1


# -- each migrated variable: a case its old parser got wrong ---------------------------------------


def test_experimental_warns_about_a_value_it_cannot_read(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(catalog.EXPERIMENTAL_ENV, "ON")
    assert catalog.experimental_enabled() is True
    monkeypatch.setenv(catalog.EXPERIMENTAL_ENV, "enable")  # was silently off
    assert catalog.experimental_enabled() is False
    assert len(warnings_about(caplog, catalog.EXPERIMENTAL_ENV)) == 1


def test_idle_silence_warning_names_every_accepted_value(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(rtc_idle.ENV, "Yes")
    assert rtc_idle.idle_silence_enabled() is True
    monkeypatch.setenv(rtc_idle.ENV, "sometimes")
    assert rtc_idle.idle_silence_enabled() is False
    (message,) = warnings_about(caplog, rtc_idle.ENV)
    assert ACCEPTED in message  # it said only "neither 1 nor 0"


@pytest.mark.parametrize("raw", ["0", "false", "off", "no", "OFF"])
def test_judges_are_off_when_the_setting_says_so_in_any_spelling(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(JUDGES_ENV, raw)  # anything but "0" used to turn them on
    assert judges_enabled() is False


def test_judges_are_on_by_default_and_stay_on_with_a_warning_on_garbage(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.delenv(JUDGES_ENV, raising=False)
    assert judges_enabled() is True
    monkeypatch.setenv(JUDGES_ENV, "true")
    assert judges_enabled() is True and not caplog.records
    monkeypatch.setenv(JUDGES_ENV, "nope")
    assert judges_enabled() is True and len(warnings_about(caplog, JUDGES_ENV)) == 1


def test_max_sessions_garbage_is_the_default_with_a_warning_not_a_traceback(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(rtc.MAX_SESSIONS_ENV, "abc")
    assert rtc.max_sessions() == 8
    assert len(warnings_about(caplog, rtc.MAX_SESSIONS_ENV)) == 1
    monkeypatch.setenv(rtc.MAX_SESSIONS_ENV, "0")  # would serve nobody
    assert rtc.max_sessions() == 1
    monkeypatch.setenv(rtc.MAX_SESSIONS_ENV, "3")
    assert rtc.max_sessions() == 3


def test_a_negative_jitter_buffer_is_clamped_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(rtc_jitter.ENV, "-3")  # was clamped silently
    assert rtc_jitter.receive_jitter_frames() == 0
    assert len(warnings_about(caplog, rtc_jitter.ENV)) == 1


def test_a_garbled_daily_cap_is_a_warning_like_every_other_setting(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(limits.DAILY_ENV, "lots")  # was logged as an error, unlike the others
    assert limits.daily_cap() == limits.DAILY_DEFAULT
    assert len(warnings_about(caplog, limits.DAILY_ENV)) == 1
    monkeypatch.setenv(limits.DAILY_ENV, "-1")  # 0 or less: no cap, as before
    assert limits.daily_cap() == -1


def test_voter_ids_per_hour_below_zero_is_zero_with_a_warning(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    monkeypatch.setenv(voter.IDS_PER_HOUR_ENV, "-5")
    assert voter.address_issue_limit() == (0, 3600.0)
    monkeypatch.setenv(voter.IDS_PER_HOUR_ENV, "many")
    assert voter.address_issue_limit() == (voter.IDS_PER_HOUR, 3600.0)
    assert len(warnings_about(caplog, voter.IDS_PER_HOUR_ENV)) == 2


@pytest.mark.parametrize("entry", [["app.py"], ["-m", "speechlm_demo", "run"]], ids=["app.py", "run"])
def test_a_garbled_port_starts_on_the_default_with_a_warning(entry: list[str], monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    """Gradio reads GRADIO_SERVER_PORT when it is imported and stopped there with a ValueError traceback."""
    env = os.environ | {"GRADIO_SERVER_PORT": "http"}
    run = subprocess.run([sys.executable, *entry, "--help"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert run.returncode == 0, run.stderr[-2000:]
    assert "--port" in run.stdout and "Traceback" not in run.stderr
    assert "GRADIO_SERVER_PORT='http' is not a port (1-65535); using the default, 7860" in run.stderr
    for raw in ("http", "0", "70000", " "):
        monkeypatch.setenv("GRADIO_SERVER_PORT", raw)
        env_settings.drop_unreadable_gradio_port()
        assert "GRADIO_SERVER_PORT" not in os.environ and parse_app_args([]).port == 7860
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7999")
    env_settings.drop_unreadable_gradio_port()
    assert parse_app_args([]).port == 7999
    assert len(warnings_about(caplog, "GRADIO_SERVER_PORT")) == 3  # blank is unset: no warning


def test_one_cache_folder_for_the_weights_and_the_settings_memo(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv(CACHE_ENV, "~/models")
    assert cache_dir() == weights.cache_dir() == settings_memo.memo_file().parent == tmp_path / "models"
    monkeypatch.setenv(CACHE_ENV, "  ")  # blank is unset (it was a folder named "  ")
    assert cache_dir() == settings_memo.memo_file().parent == tmp_path / ".cache" / "speechlm_demo"
    monkeypatch.delenv(CACHE_ENV)
    assert weights.cache_dir() == tmp_path / ".cache" / "speechlm_demo"
