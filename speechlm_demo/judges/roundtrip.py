"""Round-trip intelligibility: the project's ASR (the cascade's Whisper base) hears the reply audio, and its
transcript is scored against the text the engine says it spoke (word error rate). A TTS or vocoder that
garbles, skips or babbles shows up here even when the reply text reads well."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..audio import resample

if TYPE_CHECKING:  # the ASR stack loads only when a reply is judged (not while the app is being built)
    from ..engines.cascade.asr import ASR

log = logging.getLogger(__name__)


def default_asr() -> ASR:
    """Whisper base through faster-whisper, assembled from the PyPI weight packages (no network)."""
    from ..engines.cascade.asr import OFFLINE, FasterWhisperASR

    return FasterWhisperASR(OFFLINE, language="en", cpu_threads=1, num_workers=1)


class RoundTrip:
    """Transcribes replies with one lazily loaded ASR (``make_asr``, default :func:`default_asr`)."""

    def __init__(self, make_asr: Callable[[], ASR] = default_asr) -> None:
        self._make_asr = make_asr
        self._asr: ASR | None = None

    @property
    def asr(self) -> ASR:
        """The ASR, loaded on first use."""
        if self._asr is None:
            self._asr = self._make_asr()
        return self._asr

    def judge(self, audio: np.ndarray, sample_rate: int, reference: str) -> dict[str, float | str | None]:
        """``asr_text`` (what the ASR heard) and ``roundtrip_wer`` against ``reference`` (None without one)."""
        from ..benchmarks.latency import word_error_rate

        asr = self.asr
        pcm = np.nan_to_num(np.asarray(audio, dtype=np.float32))
        if pcm.size and sample_rate != asr.sample_rate:
            pcm = resample(pcm, sample_rate, asr.sample_rate)
        heard = asr.transcribe(pcm) if pcm.size else ""
        return {"asr_text": heard, "roundtrip_wer": word_error_rate(reference.strip() or None, heard)}
