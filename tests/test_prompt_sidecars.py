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
