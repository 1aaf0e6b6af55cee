"""``session prepare`` measures every reply from the prompt's reference end of speech as ``bench`` does: the
sidecar's ``speech_end_s``, not a re-estimate that a room-noise tail (prompts/real) pushes to the clip's end."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo import compare as cmp
from speechlm_demo.measure.feeding import Feed
from speechlm_demo.votes import listening
from tests.votes.conftest import make_entry

RATE = 16_000


def write_turn(folder: Path, name: str, sidecar: dict[str, Any] | None) -> None:
    """1 s of voice then 1.5 s of room noise at about -34 dBFS (louder than the estimate's -40 dBFS)."""
    voice = 0.3 * np.sin(2 * np.pi * 200 * np.arange(RATE) / RATE)
    floor = np.random.default_rng(0).normal(0.0, 0.02, int(1.5 * RATE))
    sf.write(folder / f"{name}.wav", np.concatenate([voice, floor]).astype(np.float32), RATE, subtype="PCM_16")
    if sidecar is not None:
        (folder / f"{name}.json").write_text(json.dumps(sidecar))


def prepare_ends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, float]]:
    """``(prompt file, speech_end_s fed)`` for every turn ``prepare`` ran (no engine replies, so it refuses)."""
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(tmp_path / "data"))
    seen: list[tuple[str, float]] = []

    def fake_run_prompt(engine: Any, prompt: Any, rate: int, tail: float, timeout: float, options: Any) -> Feed:
        seen.append((engine.id, prompt.speech_end_s))
        return Feed([], [], 0.0)

    monkeypatch.setattr(cmp, "run_prompt", fake_run_prompt)
    entries = {i: make_entry(i) for i in ("alpha", "beta")}

    def engine(engine_id: str) -> Any:
        return SimpleNamespace(id=engine_id, entry=entries[engine_id], settings=SimpleNamespace(audible_dbfs=-60.0))

    registry = SimpleNamespace(availability={i: SimpleNamespace(entry=e) for i, e in entries.items()}, get=engine)
    with pytest.raises(listening.SessionError):  # nobody replied: nothing is written
        listening.prepare(registry, tmp_path / "real", ["alpha", "beta"], "s1", root=tmp_path / "sessions")
    return seen


def test_prepare_measures_from_the_sidecar_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "real").mkdir()
    write_turn(tmp_path / "real", "turn", {"speech_end_s": 1.0})
    seen = prepare_ends(tmp_path, monkeypatch)
    assert [engine for engine, _ in seen] == ["alpha", "beta"]
    assert all(end == pytest.approx(1.0) for _, end in seen), seen


def test_prepare_without_a_sidecar_uses_the_prompt_estimate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "real").mkdir()
    write_turn(tmp_path / "real", "turn", None)
    seen = prepare_ends(tmp_path, monkeypatch)
    assert len(seen) == 2 and seen[0][1] == seen[1][1] == pytest.approx(2.5, abs=0.021), seen
