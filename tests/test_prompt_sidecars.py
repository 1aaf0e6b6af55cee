"""Prompt sidecars are read in one place (measure.feeding.prompt_from) for bench, listening sessions and smart-turn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.measure.feeding import load_prompts
from speechlm_demo.prompt_files import Skipped


def _wav(path: Path, loud_until_s: float = 1.0) -> None:
    audio = np.zeros(32_000, np.float32)
    audio[8_000 : int(loud_until_s * 16_000)] = 0.3
    sf.write(path, audio, 16_000)


def test_sidecar_times_kind_and_segments_are_read_and_a_garbled_one_is_a_skip(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav")
    (tmp_path / "a.json").write_text('{"speech_end_s": 1.5, "kind": "two", "segments": [[0.5, 0.8], [1.1, 1.5]]}')
    _wav(tmp_path / "b.wav")
    (tmp_path / "b.json").write_text('{"kind": "leadin"}')  # no end: estimated from the audio
    _wav(tmp_path / "c.wav")
    (tmp_path / "c.json").write_text("{not json")
    skipped: list[Skipped] = []
    a, b = load_prompts(tmp_path, 16_000, skipped=skipped)
    assert (a.speech_end_s, a.end_source, a.kind, a.segments) == (1.5, "sidecar", "two", [(0.5, 0.8), (1.1, 1.5)])
    assert b.end_source == "estimated" and b.kind == "leadin" and b.speech_end_s == pytest.approx(1.0, abs=0.03)
    assert [s.name for s in skipped] == ["c.wav"] and "unreadable sidecar c.json" in skipped[0].reason


@pytest.mark.parametrize(
    "sidecar, field",
    [
        ('{"speech_end_s": NaN}', "speech_end_s"),
        ('{"speech_end_s": -5}', "speech_end_s"),
        ('{"speech_end_s": 1e308}', "speech_end_s"),
        ('{"speech_end_s": Infinity}', "speech_end_s"),
        ('{"speech_end_s": "soon"}', "speech_end_s"),
        ('{"speech_end_s": true}', "speech_end_s"),
        ('{"pause_start_s": -0.1}', "pause_start_s"),
        ('{"segments": [[0, "nan"], [0.5, 1.0]]}', "segments[0]"),
        ('{"segments": [[0.5, Infinity]]}', "segments[0]"),
        ('{"segments": [[0.2, 0.4], [1.0, 0.5]]}', "segments[1]"),
        ('{"segments": [[0.2, 0.4], [1.0, 2.5]]}', "segments[1]"),
        ('{"segments": [[-1, 0.4]]}', "segments[0]"),
        ('{"segments": [0.2, 0.4]}', "segments"),
        ('{"segments": "all"}', "segments"),
    ],
)
def test_a_sidecar_time_outside_the_clip_is_a_skip_naming_the_sidecar_and_the_field(
    tmp_path: Path, sidecar: str, field: str, caplog: pytest.LogCaptureFixture
) -> None:
    _wav(tmp_path / "a.wav")  # 2.0 s long
    (tmp_path / "a.json").write_text(sidecar)
    _wav(tmp_path / "b.wav")
    skipped: list[Skipped] = []
    with caplog.at_level("WARNING"):
        (b,) = load_prompts(tmp_path, 16_000, skipped=skipped)
    assert b.path.name == "b.wav"
    assert [s.name for s in skipped] == ["a.wav"]
    assert f"sidecar a.json: {field} " in skipped[0].reason
    assert f"skipped a.wav: sidecar a.json: {field} " in caplog.text


def test_sidecar_times_at_the_edges_of_the_clip_are_kept(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav")  # 2.0 s long
    (tmp_path / "a.json").write_text('{"speech_end_s": 2.0, "speech_start_s": 0, "segments": [[0, 0], [0.5, 2.02]]}')
    (a,) = load_prompts(tmp_path, 16_000)
    assert (a.speech_end_s, a.end_source, a.segments) == (2.0, "sidecar", [(0.0, 0.0), (0.5, 2.02)])


def test_an_end_past_the_cut_of_a_long_prompt_is_in_the_file_and_ends_at_the_cut(tmp_path: Path) -> None:
    _wav(tmp_path / "a.wav")  # 2.0 s long, cut at 1.5 s
    (tmp_path / "a.json").write_text('{"speech_end_s": 1.8}')
    (a,) = load_prompts(tmp_path, 16_000, max_s=1.5)
    assert a.speech_end_s == pytest.approx(1.5) and a.end_source == "sidecar"


def test_a_reference_text_that_is_not_utf8_is_a_skip_naming_the_txt(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _wav(tmp_path / "a.wav")
    (tmp_path / "a.txt").write_bytes(b"\xff\xfeh\x00i\x00")  # UTF-16
    _wav(tmp_path / "b.wav")
    (tmp_path / "b.txt").write_text("caf\u00e9 au lait\n", encoding="utf-8")
    skipped: list[Skipped] = []
    with caplog.at_level("WARNING"):
        (b,) = load_prompts(tmp_path, 16_000, skipped=skipped)
    assert b.reference == "caf\u00e9 au lait"
    assert [s.name for s in skipped] == ["a.wav"] and "unreadable reference text a.txt: not UTF-8" in skipped[0].reason
    assert "a.txt" in caplog.text
