"""bench-soak (issue 13, item 4): monologues and questions in a row, threads, memory and reply rate reported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from speechlm_demo.benchmarks.soak import format_report, soak
from speechlm_demo.engines.echo import EchoEngine
from tests.conftest import require
from tests.engines_for_tests import entry, tone

REPO = Path(__file__).resolve().parents[1]


def test_soak_answers_every_question_and_reports_threads_and_memory() -> None:
    engine = EchoEngine(entry("echo", end_silence_ms=400))
    doc = soak(engine, rounds=2, monologue_s=4.0, gap_s=1.0, answer_timeout_s=10.0, settle_s=0.5, say=lambda text: tone(0.6))
    summary = doc["summary"]
    assert summary["reply_rate"] == 1.0 and summary["questions"] == 2
    for round_ in doc["rounds"]:
        assert round_["answered"] and round_["reply_s"] is not None
        assert round_["threads_before"] <= round_["threads_peak"] and round_["rss_before_mb"] > 0
        assert round_["threads_after"] <= round_["threads_before"] + 2  # nothing left running after the answer
    assert "reply rate 2/2" in format_report(doc)


def test_bench_soak_cli(tmp_path: Path) -> None:
    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)")
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "bench-soak", "--engine", "echo", "--rounds", "1", "--monologue", "3",
         "--gap", "1", "--settle", "0.5", "--json", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "reply rate 1/1" in run.stdout and "threads" in run.stdout and "RSS" in run.stdout
    assert json.loads(out.read_text())["summary"]["reply_rate"] == 1.0
