"""Output paths that cannot be written are refused before any work starts; one that goes bad during a run is
one ``error:`` line, never a traceback."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from speechlm_demo.cli import main


def _never(*args: Any, **kwargs: Any) -> Any:
    raise AssertionError("the work started although the output path was bad")


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every long run of the commands under test fails the test if it starts."""
    from speechlm_demo.benchmarks import soak, vote_backend
    from speechlm_demo.judges import folder

    for module, name in ((vote_backend, "bench_ratings"), (vote_backend, "bench_writes"), (soak, "soak"), (folder, "judge_folder")):
        monkeypatch.setattr(module, name, _never)


def _bad_outputs(tmp_path: Path) -> list[tuple[list[str], str]]:
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    missing = str(tmp_path / "nowhere" / "out.json")
    return [
        (["votes", "export", "--csv", str(tmp_path)], str(tmp_path)),
        (["votes", "export", "--csv", missing], missing),
        (["votes", "export", "--parquet", str(tmp_path)], str(tmp_path)),
        (["leaderboard", "--plots", str(a_file)], str(a_file)),
        (["leaderboard", "--plots", str(a_file / "plots")], str(a_file)),
        (["bench-votes", "--json", missing], missing),
        (["bench-soak", "--engine", "echo", "--json", missing], missing),
        (["bench-soak", "--engine", "echo", "--json", str(tmp_path)], str(tmp_path)),
        (["judge", str(tmp_path), "--json", str(tmp_path)], str(tmp_path)),
        (["judge", str(tmp_path), "--csv", missing], missing),
        (["bench", "--engine", "echo", "--prompts", str(tmp_path), "--json", str(tmp_path)], str(tmp_path)),
        (["bench-moshi", "--random-weights", "tiny", "--json", str(tmp_path)], str(tmp_path)),
    ]


def test_bad_output_paths_are_refused_before_any_work(tmp_path: Path, no_work: None, capsys: pytest.CaptureFixture[str]) -> None:
    for argv, named in _bad_outputs(tmp_path):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2, argv
        assert "error: argument --" in err and named in err and "Traceback" not in err, (argv, err)


def test_checkers_accept_writable_paths(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from speechlm_demo.cli_types import output_file, output_folder

    assert output_file(str(tmp_path / "new.json")) == str(tmp_path / "new.json")
    assert output_folder(str(tmp_path / "new" / "plots")) == str(tmp_path / "new" / "plots")
    with pytest.raises(argparse.ArgumentTypeError, match="is a folder"):
        output_file(str(tmp_path))
    assert output_file("") == "" and output_folder("") == ""  # no such output, as before
    monkeypatch.setenv("HOME", str(tmp_path))
    assert output_file("~/v.csv") == str(tmp_path / "v.csv") and output_folder("~/plots") == str(tmp_path / "plots")


@pytest.mark.parametrize("problem", [PermissionError(13, "Permission denied"), OSError(36, "File name too long"), RuntimeError("Symlink loop from '/x'")])
def test_a_path_that_cannot_even_be_checked_is_refused_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], problem: Exception) -> None:
    """A folder that cannot be entered (as a user, not root), a name too long, a symlink loop: pathlib raises."""

    def fail(self: Path, *args: Any, **kwargs: Any) -> Any:
        raise problem

    monkeypatch.setattr(Path, "resolve", fail)
    monkeypatch.setattr(Path, "is_dir", fail)
    target = str(tmp_path / "locked" / "x.csv")
    for argv in (["votes", "export", "--csv", target], ["leaderboard", "--plots", target]):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and f"{target} cannot be used: " in err and "Traceback" not in err, err


def test_a_report_path_that_goes_bad_during_the_run_is_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from speechlm_demo.benchmarks import vote_backend

    target = tmp_path / "out" / "b.json"
    target.parent.mkdir()

    def ratings(*args: Any) -> dict[str, Any]:
        target.mkdir()  # the path is taken while the benchmark runs
        return {"ok": True}

    monkeypatch.setattr(vote_backend, "bench_ratings", ratings)
    monkeypatch.setattr(vote_backend, "bench_writes", lambda *args: {"ok": True})
    monkeypatch.setattr(vote_backend, "format_report", lambda report: "report")
    assert main(["bench-votes", "--json", str(target)]) == 2
    err = capsys.readouterr().err
    assert "error: the report was not written" in err and str(target) in err and "Traceback" not in err


def test_judge_scores_that_cannot_be_written_at_the_end_are_one_error_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from speechlm_demo.judges import folder

    target = tmp_path / "j.json"

    def judged(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        target.mkdir()
        return [{"file": "a.wav", "duration_s": 1.0}]

    monkeypatch.setattr(folder, "judge_folder", judged)
    csv = tmp_path / "j.csv"
    assert main(["judge", str(tmp_path), "--json", str(target), "--csv", str(csv), "--no-asr", "--no-dnsmos"]) == 2
    out, err = capsys.readouterr()
    assert f"error: the scores above were not written to {target} (Is a directory)\n" in err and "Traceback" not in err, err
    assert "a.wav" in out and "a.wav" in csv.read_text()  # the other output and the table still have them


def test_session_prepare_with_a_data_dir_that_is_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    a_file = tmp_path / "data"
    a_file.write_text("not a folder")
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(a_file))
    monkeypatch.setattr("speechlm_demo.votes.listening.load_prompts", _never)
    assert main(["session", "prepare", "--prompts", str(tmp_path), "--engines", "echo,cascade", "--name", "s1"]) == 2
    err = capsys.readouterr().err
    assert "error: sessions cannot be written there" in err and str(a_file) in err and "Traceback" not in err


def test_judge_on_a_folder_it_cannot_list_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Mode 0300 as a user (not root: the tests run as root, so listing is made to fail here)."""

    def denied(self: Path) -> Any:
        raise PermissionError(13, "Permission denied", str(self))

    monkeypatch.setattr(Path, "iterdir", denied)
    assert main(["judge", str(tmp_path), "--no-asr", "--no-dnsmos"]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot list {tmp_path}: Permission denied" in err and "Traceback" not in err, err
