"""Blind reply files: a new random folder and name per call, served from Gradio's cache, old ones pruned."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from speechlm_demo.ui import anonymous_audio
from speechlm_demo.ui.anonymous_audio import KEEP_S, SUBFOLDER, anonymous_wav


def test_the_same_audio_gets_a_new_unrelated_path_every_time(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(anonymous_audio, "_last_prune", 0.0)
    samples = (0.3 * np.sin(np.arange(2400) / 3.0)).astype(np.float32)
    first, second = anonymous_wav(samples, 24_000, tmp_path), anonymous_wav(samples, 24_000, tmp_path)
    assert first != second and Path(first).parent != Path(second).parent and Path(first).name != Path(second).name
    assert Path(first).parent.parent == tmp_path / SUBFOLDER
    audio, rate = sf.read(first, dtype="float32")
    assert rate == 24_000 and np.allclose(audio, samples, atol=1e-4)
    assert Path(first).read_bytes() == Path(second).read_bytes()  # only the URL differs


def test_old_round_folders_are_pruned(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(anonymous_audio, "_last_prune", 0.0)
    old = Path(anonymous_wav(np.zeros(10, np.float32), 24_000, tmp_path)).parent
    stale = time.time() - KEEP_S - 60
    os.utime(old, (stale, stale))
    monkeypatch.setattr(anonymous_audio, "_last_prune", 0.0)
    fresh = Path(anonymous_wav(np.zeros(10, np.float32), 24_000, tmp_path)).parent
    assert not old.exists() and fresh.exists()
