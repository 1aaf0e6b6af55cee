"""``python -m speechlm_demo votes export | leaderboard | bench-votes``."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from speechlm_demo.cli import main
from speechlm_demo.votes.store import VoteStore
from tests.votes.conftest import make_record

REPO = Path(__file__).resolve().parents[2]


def cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"SPEECHLM_DATA_DIR": str(data)}
    env.pop("SPEECHLM_DB_URL", None)
    return subprocess.run([sys.executable, "-m", "speechlm_demo", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)


def test_export_and_leaderboard(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = VoteStore(f"sqlite:///{data / 'votes.sqlite3'}")
    outcomes = ["a"] * 6 + ["b"] * 2 + ["tie"] * 2
    records = [make_record(outcome=o) for o in outcomes]
    for record in records:
        store.add(record)
    store.close()
    out = cli("votes", "export", "--csv", str(tmp_path / "v.csv"), "--parquet", str(tmp_path / "v.parquet"), data=data)
    assert out.returncode == 0 and "exported 10 votes" in out.stdout, out.stderr
    assert sorted(pd.read_csv(tmp_path / "v.csv")["vote_id"]) == sorted(r.vote_id for r in records)
    assert len(pd.read_parquet(tmp_path / "v.parquet")) == 10
    doc = json.loads(cli("leaderboard", "--json", "--rounds", "50", "--min-votes", "20", data=data).stdout)
    assert doc["votes"] == 10 and [e["engine"] for e in doc["engines"]] == ["alpha", "beta"]
    assert doc["engines"][0]["wins"] == 6 and doc["engines"][0]["preliminary"] is True
    assert doc["win_rates"]["alpha"]["beta"] == 0.7
    text = cli("leaderboard", "--rounds", "50", data=data)
    assert text.returncode == 0 and "alpha" in text.stdout and "Win rate" in text.stdout
    missing = cli("votes", "export", data=data)
    assert missing.returncode == 2 and "--csv" in missing.stderr


def test_bench_votes_reports_both_targets(tmp_path: Path) -> None:
    out = cli("bench-votes", "--votes", "2000", "--rounds", "20", "--engines", "4", "--voters", "4", "--votes-per-voter", "5", "--think", "0.01", "--json", str(tmp_path / "b.json"), data=tmp_path)
    assert "ratings: 20 bootstrap rounds x 2000 votes" in out.stdout and "writes: 4 concurrent voters" in out.stdout, out.stderr
    report = json.loads((tmp_path / "b.json").read_text())
    assert report["writes"]["stored"] == report["writes"]["votes"] == 20 and report["ratings"]["ranking_correct"]


def test_leaderboard_filters_by_listening_session(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    store = VoteStore(f"sqlite:///{data / 'votes.sqlite3'}")
    for index in range(6):
        store.add(make_record(engine_a="alpha", engine_b="beta", outcome="a", tag="club" if index < 4 else ""))
    store.close()
    doc = json.loads(cli("leaderboard", "--json", "--rounds", "20", "--tag", "club", data=data).stdout)
    assert doc["votes"] == 4
    assert json.loads(cli("leaderboard", "--json", "--rounds", "20", data=data).stdout)["votes"] == 6


def test_a_data_dir_that_is_a_file_gives_an_error_line(tmp_path: Path) -> None:
    not_a_folder = tmp_path / "data"
    not_a_folder.write_text("oops")
    for args in (["leaderboard"], ["votes", "export", "--csv", str(tmp_path / "v.csv")], ["leaderboard", "--json"]):
        run = cli(*args, data=not_a_folder)
        assert run.returncode == 2, (args, run.stderr)
        assert run.stderr.startswith("error: ") and str(not_a_folder) in run.stderr and "Traceback" not in run.stderr, run.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["leaderboard", "--rounds", "0"], "--rounds: must be 1 or more, not '0'"),
        (["leaderboard", "--rounds", "-5"], "--rounds: must be 1 or more, not '-5'"),
        (["leaderboard", "--style-rounds", "-1"], "--style-rounds: must be 1 or more, not '-1'"),
        (["leaderboard", "--min-votes", "-1"], "--min-votes: must be 0 or more, not '-1'"),
        (["leaderboard", "--rounds", "many"], "--rounds: a whole number is needed, not 'many'"),
        (["bench-votes", "--engines", "1"], "--engines: must be 2 or more, not '1'"),
        (["bench-votes", "--voters", "0"], "--voters: must be 1 or more, not '0'"),
        (["bench-votes", "--think", "nan"], "--think: a finite number is needed, not 'nan'"),
        (["session", "prepare", "--prompts", "p", "--engines", "a,b", "--name", "n", "--timeout", "0"], "--timeout: must be more than 0, not '0'"),
    ],
)
def test_numeric_flags_out_of_range_are_refused_with_a_message(args: list[str], complaint: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        main(args)
    assert stopped.value.code == 2
    assert complaint in capsys.readouterr().err


def test_read_only_commands_never_make_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    typo = tmp_path / "typo" / "x.db"
    assert main(["leaderboard", "--db", f"sqlite:///{typo}"]) == 2
    assert f"no vote store at {typo}" in capsys.readouterr().err and not typo.parent.exists()
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(tmp_path / "wrong"))
    assert main(["votes", "export", "--csv", str(tmp_path / "v.csv")]) == 2
    err = capsys.readouterr().err
    assert "no vote store at" in err and "SPEECHLM_DATA_DIR" in err and not (tmp_path / "wrong").exists() and not (tmp_path / "v.csv").exists()
    other = tmp_path / "other.sqlite3"  # a SQLite database that is not a vote store is not turned into one
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    assert main(["leaderboard", "--db", f"sqlite:///{other}"]) == 2
    assert "no votes table" in capsys.readouterr().err
    assert sqlite3.connect(other).execute("SELECT name FROM sqlite_master").fetchall() == [("t",)]


def test_an_unknown_tag_is_named_with_the_tags_there_are(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'votes.sqlite3'}"
    store = VoteStore(url)
    for index in range(5):
        store.add(make_record(tag="club" if index < 3 else ""))
    store.close()
    assert main(["leaderboard", "--db", url, "--tag", "nosuch", "--rounds", "5"]) == 2
    err = capsys.readouterr().err
    assert "no votes carry the tag 'nosuch'" in err and "'club' (3)" in err and "untagged (2)" in err
