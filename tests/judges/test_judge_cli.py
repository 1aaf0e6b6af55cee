"""``python -m speechlm_demo judge DIR --json OUT --csv OUT`` on a folder of WAVs with reference texts."""

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
pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("espeak")]


def judge(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "speechlm_demo", "judge", *args], cwd=REPO, capture_output=True, text=True, timeout=600, check=False)


def test_judge_scores_a_folder(tmp_path: Path) -> None:
    folder = tmp_path / "replies"
    folder.mkdir()
    text = "Good morning, the train to London leaves at nine."
    speech = speak(text, 22_050)
    sf.write(folder / "clean.wav", np.concatenate([np.zeros(6615, np.float32), 0.7 * speech]), 22_050)
    (folder / "clean.txt").write_text(text)
    (folder / "clean.json").write_text(json.dumps({"status": "ok", "metrics": {"voice_to_voice_ms": 812.5}}))
    noisy = np.clip(0.7 * speech + np.random.default_rng(0).normal(0, 0.2, speech.size), -1, 1)
    sf.write(folder / "noisy.wav", noisy.astype(np.float32), 22_050)
    (folder / "noisy.txt").write_text(text)
    (folder / "noisy.json").write_text("{not json")
    sf.write(folder / "stereo_no_text.WAV", np.stack([0.5 * speech, 0.5 * speech], axis=1), 22_050, format="WAV")
    (folder / "garbage.wav").write_bytes(b"RIFF not really a wav")
    out = judge(str(folder), "--json", str(tmp_path / "j.json"), "--csv", str(tmp_path / "j.csv"))
    assert out.returncode == 0, out.stderr
    doc = json.loads((tmp_path / "j.json").read_text())
    rows = {row["file"]: row for row in doc["files"]}
    assert set(rows) == {"clean.wav", "noisy.wav", "stereo_no_text.WAV", "garbage.wav"}  # any case of .wav
    assert "could not read" in rows["garbage.wav"]["error"] and "garbage.wav" in out.stderr
    clean, noisy_row = rows["clean.wav"], rows["noisy.wav"]
    assert clean["dnsmos_ovrl"] > noisy_row["dnsmos_ovrl"] and clean["roundtrip_wer"] <= 0.3
    assert clean["voice_to_voice_ms"] == 812.5 and noisy_row["voice_to_voice_ms"] is None
    assert clean["leading_silence_ms"] == pytest.approx(300, abs=25) and 100 < clean["words_per_minute"] < 300
    assert rows["stereo_no_text.WAV"]["roundtrip_wer"] is None and rows["stereo_no_text.WAV"]["asr_text"]
    assert doc["mean"]["duration_s"] > 0
    assert len(pd.read_csv(tmp_path / "j.csv")) == 4


def test_judge_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    missing = judge(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and "is not a folder" in missing.stderr
    empty = judge(str(tmp_path))
    assert empty.returncode == 2 and "no .wav files" in empty.stderr
    bad_out = judge(str(tmp_path), "--json", str(tmp_path / "no" / "such" / "x.json"))
    assert bad_out.returncode == 2 and "no folder for the output" in bad_out.stderr
