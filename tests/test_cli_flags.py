"""Numeric flags of every subcommand are checked by argparse: a bad value is a one-line message and exit 2."""

from __future__ import annotations

import argparse

import pytest

from speechlm_demo.cli import main
from speechlm_demo.cli_types import (
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    positive_int_list,
)

BENCH = ["bench", "--engine", "echo", "--prompts", "nowhere"]
SOAK = ["bench-soak", "--engine", "echo"]
MOSHI = ["bench-moshi", "--random-weights", "tiny"]


@pytest.mark.parametrize(
    "argv, flag",
    [
        ([*BENCH, "--tail", "-1"], "--tail"),
        ([*BENCH, "--tail", "nan"], "--tail"),
        ([*BENCH, "--repeat", "0"], "--repeat"),
        ([*BENCH, "--repeat", "-1"], "--repeat"),
        ([*BENCH, "--repeat", "2.5"], "--repeat"),
        ([*BENCH, "--timeout", "0"], "--timeout"),
        ([*BENCH, "--timeout", "inf"], "--timeout"),
        ([*BENCH, "--max-prompt", "-3"], "--max-prompt"),
        ([*SOAK, "--monologue", "-1"], "--monologue"),
        ([*SOAK, "--gap", "-1"], "--gap"),
        ([*SOAK, "--rounds", "0"], "--rounds"),
        ([*SOAK, "--answer-timeout", "0"], "--answer-timeout"),
        ([*SOAK, "--settle", "-0.5"], "--settle"),
        ([*MOSHI, "--device", "nosuch"], "--device"),
        ([*MOSHI, "--device", "cuda:x"], "--device"),
        ([*MOSHI, "--frames", "0"], "--frames"),
        ([*MOSHI, "--warmup", "-1"], "--warmup"),
        ([*MOSHI, "--batch", "1,-4"], "--batch"),
        (["smart-turn", "x.wav", "--after-ms", "-900"], "--after-ms"),
        (["smart-turn", "x.wav", "--after-ms", "nan"], "--after-ms"),
    ],
)
def test_bad_numeric_flag_is_refused_by_argparse(argv: list[str], flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"argument {flag}:" in err and "Traceback" not in err


def test_checkers_accept_good_values_and_name_the_bad_one() -> None:
    assert (positive_int("3"), non_negative_int("0"), positive_float("0.5"), non_negative_float("0")) == (3, 0, 0.5, 0.0)
    assert positive_int_list("1, 4,16") == [1, 4, 16]
    for check, text in [(positive_int, "x"), (non_negative_int, "-1"), (positive_float, "-inf"), (non_negative_float, "nan"), (positive_int_list, ",")]:
        with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
            check(text)


def test_device_names_accepted_by_bench_moshi() -> None:
    from speechlm_demo.benchmarks.moshi_frames import device_name

    assert [device_name(d) for d in ("cpu", "CUDA", "cuda:1", "rocm", "rocm:0", "mps")] == ["cpu", "cuda", "cuda:1", "rocm", "rocm:0", "mps"]
    for bad in ("cpu:0", "cuda:", "cuda:-1", "gpu", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            device_name(bad)


def test_bench_moshi_refuses_a_gpu_this_torch_build_does_not_have(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*MOSHI, "--device", "cuda:99"]) == 2
    err = capsys.readouterr().err
    assert "error: --device cuda:99" in err and "Traceback" not in err
