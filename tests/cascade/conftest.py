"""Shared fixtures for the cascade tests: spoken clips made with the espeak-ng CLI, and the slow marker."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from collections.abc import Callable

import numpy as np
import pytest

from speechlm_demo.audio import decode_audio, resample
from tests.conftest import require


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``slow`` marker (tests that load real model weights)."""
    config.addinivalue_line("markers", "slow: loads real model weights (seconds); deselect with -m 'not slow'")


def need(*modules: str) -> None:
    """Skip (locally) or fail (CI) unless the cascade's Python packages are installed."""
    missing = [module for module in modules if importlib.util.find_spec(module) is None]
    require(f"missing {', '.join(missing)} (pip install -r requirements-cascade.txt)" if missing else None)


def speak(text: str, rate: int = 16_000) -> np.ndarray:
    """``text`` spoken by espeak-ng, as mono float32 at ``rate``.

    The British voice is used: Whisper base hears "capital of France" from it reliably, while the
    en-us voice at 130-170 wpm often comes out as "capital and friends".
    """
    executable = shutil.which("espeak-ng")
    require(None if executable else "espeak-ng is not installed (apt-get install espeak-ng)")
    assert executable is not None
    wav = subprocess.run(
        [executable, "--stdout", "-v", "en", "-s", "150"], input=text.encode(), capture_output=True, check=True
    ).stdout
    audio, source_rate = decode_audio(wav)
    return resample(audio, source_rate, rate)


@pytest.fixture(scope="session")
def spoken() -> Callable[..., np.ndarray]:
    """Factory: ``spoken(text, rate=16000)`` -> speech clip."""
    return speak
