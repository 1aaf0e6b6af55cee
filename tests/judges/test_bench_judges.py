"""``bench --judges``: every reply of the benchmark is scored by the automatic judges after its turn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from tests.support.speech import speak

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.usefixtures("espeak")
def test_bench_judges_the_echo_replies(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    speech = speak("Please tell me the time in Paris.", 16_000)
    sf.write(prompts / "q.wav", np.concatenate([0.6 * speech, np.zeros(3200, np.float32)]), 16_000)
    (prompts / "q.json").write_text(json.dumps({"speech_end_s": len(speech) / 16_000}))
    run = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--prompts", str(prompts), "--judges",
         "--json", str(tmp_path / "r.json"), "--csv", str(tmp_path / "r.csv"), "--tail", "1.5"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads((tmp_path / "r.json").read_text())
    judged = doc["turns"][0]["judges"]
    assert judged["duration_s"] == pytest.approx(len(speech) / 16_000, abs=0.5)  # echo plays the turn back
    assert 1.0 <= judged["dnsmos_ovrl"] <= 5.0 and "paris" in judged["asr_text"].lower()
    assert judged["voice_to_voice_ms"] == doc["turns"][0]["metrics"]["voice_to_voice_ref_ms"]
    assert judged["voice_to_voice_from"] == doc["turns"][0]["measured_from"]["voice_to_voice_ref_ms"] == "reference_speech_end"
    assert doc["summary"]["judges"]["dnsmos_ovrl"] == pytest.approx(judged["dnsmos_ovrl"], abs=1e-3)
    assert "judges (mean over replies)" in run.stdout
    assert "judge_dnsmos_ovrl" in pd.read_csv(tmp_path / "r.csv").columns
