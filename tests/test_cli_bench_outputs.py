"""``bench --plot`` takes only a format matplotlib writes, a plot that fails is a one-line error, and
``bench --startup`` launches app.py with the bench's ``--catalog`` / ``--host`` and shows why a launch failed."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.benchmarks import latency
from speechlm_demo.cli import main
from tests.engines_for_tests import silence, tone


def test_a_plot_suffix_matplotlib_cannot_write_is_refused_before_the_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["bench", "--engine", "echo", "--prompts", str(tmp_path), "--plot", str(tmp_path / "latency.txt")])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "argument --plot: cannot write a plot as .txt: use one of" in err
    assert ".png" in err and ".svg" in err and "Traceback" not in err


def test_plot_formats_matplotlib_writes_are_accepted(tmp_path: Path) -> None:
    from speechlm_demo.cli_types import plot_file

    for name in ("r.png", "r.PNG", "r.svg", "r.pdf", "r"):  # no suffix: a PNG, as before
        assert plot_file(str(tmp_path / name)) == str(tmp_path / name)
    assert plot_file("") == ""
    with pytest.raises(argparse.ArgumentTypeError, match=r"\.json"):
        plot_file(str(tmp_path / "r.json"))


def test_a_plot_that_cannot_be_written_is_a_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    sf.write(tmp_path / "q.wav", np.concatenate([tone(0.6), silence(0.2)]), 16_000)

    def refuse(doc: dict, path: Path) -> None:
        raise ValueError("Format 'xyz' is not supported\n(supported formats: png)")

    monkeypatch.setattr(latency, "write_plot", refuse)
    status = main(["bench", "--engine", "echo", "--prompts", str(tmp_path), "--tail", "1.0", "--plot", str(tmp_path / "r.png")])
    err = capsys.readouterr().err
    assert status == 2 and "Traceback" not in err
    assert f"error: cannot write the plot {tmp_path / 'r.png'}: Format 'xyz' is not supported (supported formats: png)\n" in err


def test_startup_launches_app_py_with_the_catalogue_and_the_simulated_host() -> None:
    command = latency.startup_command("my-echo", 7861, catalog="mine.yaml", host="cuda:24")
    assert command[0] == sys.executable and command[1].endswith("app.py")
    assert command[2:] == ["--engine", "my-echo", "--port", "7861", "--catalog", "mine.yaml", "--simulate-host", "cuda:24"]
    assert latency.startup_command("echo", 1)[2:] == ["--engine", "echo", "--port", "1"]


def test_a_failed_startup_shows_app_pys_last_lines(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "no-such-catalogue.yaml"
    assert main(["bench", "--startup", "--engine", "echo", "--catalog", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "error: app.py exited with 2; its last lines on stderr:" in err
    assert f"{missing}: cannot read catalogue" in err  # app.py read the bench's --catalog


def test_last_lines_keeps_the_end_of_what_was_written() -> None:
    assert latency.last_lines("a\n\nb\nc\n", 2) == "\n  b\n  c"
    assert latency.last_lines("") == ""
