"""Make speech clips for tests with espeak-ng (no weights needed)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import soundfile as sf

from speechlm_demo.benchmarks import prompt_sets as bench_prompts


def espeak_available() -> bool:
    """Whether the espeak-ng CLI is installed."""
    return shutil.which("espeak-ng") is not None


def speak(text: str, rate: int = 16_000) -> np.ndarray:
    """Synthesise ``text`` to mono float32 at ``rate`` (the benchmark prompts' voice)."""
    return bench_prompts.speak(text, rate)


def padded_clip(path: Path, text: str, before_s: float, after_s: float, rate: int = 48_000) -> dict:
    """Write ``silence + speech + silence`` to ``path``; return where the speech is (seconds)."""
    speech = speak(text, rate)
    audio = np.concatenate(
        [np.zeros(int(before_s * rate), np.float32), speech * 0.8, np.zeros(int(after_s * rate), np.float32)]
    )
    sf.write(path, audio, rate, subtype="PCM_16")
    return {"speech_start_s": before_s, "speech_end_s": before_s + len(speech) / rate, "path": str(path)}

