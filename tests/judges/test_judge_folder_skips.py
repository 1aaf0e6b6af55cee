"""``judge DIR``: a WAV or reference text that cannot be read is not judged; its reason is printed, and a
folder where nothing could be judged is a failure (exit 1), not a silent success."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.cli import main

RATE = 16_000


def tone(path: Path) -> None:
    t = np.arange(RATE) / RATE
    sf.write(path, (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), RATE)


def test_a_reference_that_is_not_utf8_is_skipped_naming_the_txt(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                caplog: pytest.LogCaptureFixture) -> None:
    tone(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_bytes(b"\xff\xfeh\x00i\x00")  # UTF-16
    tone(tmp_path / "b.wav")
    (tmp_path / "b.txt").write_text("caf\u00e9", encoding="utf-8")
    out = tmp_path / "j.json"
    with caplog.at_level("WARNING"):
        status = main(["judge", str(tmp_path), "--no-asr", "--no-dnsmos", "--json", str(out)])
    err = capsys.readouterr().err
    assert status == 0
    rows = {row["file"]: row for row in json.loads(out.read_text())["files"]}
    assert "unreadable reference text a.txt: not UTF-8" in rows["a.wav"]["error"] and "duration_s" not in rows["a.wav"]
    assert rows["b.wav"]["reference"] == "caf\u00e9" and rows["b.wav"]["duration_s"] == pytest.approx(1.0)
    assert "1 file(s) not judged:\n  a.wav: unreadable reference text a.txt: not UTF-8" in err
    assert "skipped a.wav: unreadable reference text a.txt" in caplog.text


def test_nothing_judged_is_exit_1_with_every_reason_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "garbage.wav").write_bytes(b"RIFF not really a wav")
    tone(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_bytes(b"\xe9t\xe9")  # Latin-1
    status = main(["judge", str(tmp_path), "--no-asr", "--no-dnsmos"])
    err = capsys.readouterr().err
    assert status == 1
    assert "a.wav: unreadable reference text a.txt: not UTF-8" in err and "garbage.wav: could not read" in err
    assert "none of the 2 .wav file(s)" in err and "Traceback" not in err


def test_a_folder_of_unreadable_wavs_alone_is_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty.wav").write_bytes(b"")
    assert main(["judge", str(tmp_path), "--no-asr", "--no-dnsmos"]) == 1
    assert "1 file(s) not judged:\n  empty.wav: " in capsys.readouterr().err
