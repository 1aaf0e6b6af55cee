"""Tiny random-weight Qwen checkpoints, built once per test session in a temporary directory."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import require


def need_transformers() -> None:
    """Skip (locally) or fail (CI) unless torch and transformers are installed."""
    missing = [module for module in ("torch", "transformers") if importlib.util.find_spec(module) is None]
    require(f"missing {', '.join(missing)} (pip install torch transformers==5.23.0)" if missing else None)


@pytest.fixture(scope="session")
def tiny_omni_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Qwen2.5-Omni (thinker + talker + token2wav + spk_dict.pt)."""
    need_transformers()
    from tests.qwen_local.tiny_models import build_tiny_omni

    return build_tiny_omni(tmp_path_factory.mktemp("qwen-omni-tiny"))


@pytest.fixture(scope="session")
def tiny_qwen2_audio_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved tiny Qwen2-Audio."""
    need_transformers()
    from tests.qwen_local.tiny_models import build_tiny_qwen2_audio

    return build_tiny_qwen2_audio(tmp_path_factory.mktemp("qwen2-audio-tiny"))
