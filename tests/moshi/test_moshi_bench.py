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
    with pytest.raises(SystemExit) as exit_:
        main(["bench-moshi", "--random-weights", "tiny", "--batch", "0,x", "--frames", "1"])
    assert exit_.value.code == 2 and "argument --batch" in capsys.readouterr().err


@pytest.mark.slow
def test_latency_bench_feeds_a_full_duplex_engine(local_engine, tmp_path) -> None:
    """`bench` runs a full-duplex engine through the same feeder: prompt, then a bounded window of silence."""
    import numpy as np
    import soundfile as sf

    from speechlm_demo.benchmarks.latency import benchmark
    from speechlm_demo.measure.feeding import load_prompts

    t = np.arange(int(0.8 * 16_000)) / 16_000
    sf.write(tmp_path / "p.wav", np.concatenate([0.3 * np.sin(2 * np.pi * 220 * t), np.zeros(3200)]), 16_000)
    (tmp_path / "p.json").write_text(json.dumps({"speech_end_s": 0.8}))
    (turn,) = benchmark(local_engine, load_prompts(tmp_path, 16_000), tail_s=2.0, timeout_s=15.0)
    assert turn.status == "ok", turn  # the tiny model babbles: there is always agent audio
    assert turn.marks_ms["reference_speech_end"] == 0.0 and "turn_detected" in turn.marks_ms
    assert turn.metrics["voice_to_voice_ref_ms"] >= 0 and turn.measured_from["voice_to_voice_ref_ms"] == "reference_speech_end"
