"""``bench-moshi`` on the tiny random architecture (CPU)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from speechlm_demo.cli import main
from tests.moshi.conftest import need_moshi

pytestmark = pytest.mark.slow


def test_bench_reports_step_time_and_rtf_per_batch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need_moshi()
    out = tmp_path / "bench.json"
    status = main(["bench-moshi", "--random-weights", "tiny", "--batch", "1,3", "--frames", "3", "--warmup", "2",
                   "--device", "cpu", "--dtype", "float32", "--json", str(out)])
    assert status == 0
    doc = json.loads(out.read_text())
    assert doc["size"] == "tiny" and doc["device"] == "cpu" and doc["params"]["lm"] > 1e6
    assert [row["batch"] for row in doc["results"]] == [1, 3]
    for row in doc["results"]:
        assert row["frames"] == 3 and row["step_ms"]["mean"] > 0 and row["rtf"] == pytest.approx(row["step_ms"]["mean"] / 80, abs=0.01)
        assert set(row["stage_ms_mean"]) == {"encode", "lm", "decode"}
    assert "real time" in capsys.readouterr().out


def test_bad_batch_list_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench-moshi", "--random-weights", "tiny", "--batch", "0,x", "--frames", "1"]) == 2
    assert "error:" in capsys.readouterr().err
