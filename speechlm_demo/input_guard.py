"""What a session accepts: the one place where pushed audio is checked and cleaned.

:meth:`speechlm_demo.engines.base.EngineSession.push_audio` hands everything it is given to
:class:`InputGuard` before the engine sees it. Whatever arrives (lists, int16, stereo in either layout,
another sample rate, NaN, +/-Inf, floats far outside [-1, 1]) leaves as finite mono float32 in [-1, 1] at
the rate the session works at, resampled once (by soxr HQ; a live path such as WebRTC switches to
FFmpeg's low-delay resampler with :meth:`InputGuard.use_low_delay_resampler`); what cannot be used at all (None, a single number, complex or text arrays, a
3-D array, an impossible rate) is skipped. Each kind of problem is reported once per session with an
:class:`~speechlm_demo.engines.base.ErrorEvent`, then only counted, and the session keeps going.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from .audio import AudioError, LowDelayResampler, StreamResampler, check_sample_rate, to_mono_float32

log = logging.getLogger(__name__)

Report = Callable[[str], None]


class InputGuard:
    """Cleans the audio pushed into one session; reports each kind of problem once through ``report``."""

    def __init__(self, sample_rate: int, report: Report, output_rate: int | None = None) -> None:
        self.sample_rate = sample_rate  # of a push that names no rate
        self.output_rate = output_rate or sample_rate  # of what leaves
        self.report = report
        self.counts: dict[str, int] = {}  # problem kind -> how many pushes had it
        self._resampler: StreamResampler | LowDelayResampler = StreamResampler(self.output_rate)

    def use_low_delay_resampler(self) -> None:
        """Resample with :class:`~speechlm_demo.audio.LowDelayResampler` (holds ~1 ms back, where soxr HQ's
        stream holds 21-33 ms: latency on a live path); call before the first push."""
        self._resampler = LowDelayResampler(self.output_rate)

    def clean(self, pcm: object, sample_rate: int | None = None) -> np.ndarray | None:
        """Mono float32 in [-1, 1] at :attr:`output_rate`, or None when the push is unusable (reported)."""
        try:
            rate = self.sample_rate if sample_rate is None else check_sample_rate(sample_rate)
            array = _numeric(pcm)
            if array.size == 0:
                return np.zeros(0, np.float32)
            nonfinite = int(array.size - np.count_nonzero(np.isfinite(array))) if array.dtype.kind == "f" else 0
            if array.dtype.kind == "f" and array.size:
                finite = array[np.isfinite(array)] if nonfinite else array
                if finite.size and (float(finite.max()) > 1.0 or float(finite.min()) < -1.0):
                    self._once("clipped", "Audio samples outside [-1, 1] were clipped (is the input float audio in int16 scale?).")
            mono = to_mono_float32(array)  # NaN/Inf -> 0, floats clipped to [-1, 1], channels averaged
        except AudioError as exc:
            self._once("unusable", f"Ignored unusable audio input: {exc}.")
            return None
        if nonfinite:
            self._once("nonfinite", f"{nonfinite} audio sample(s) were NaN or infinite and were replaced with silence.")
        if rate != self.output_rate and mono.size:
            mono = self._resampler(mono, rate)
        return mono

    def _once(self, kind: str, message: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1
        if self.counts[kind] == 1:
            log.warning(message)
            self.report(message + " Further cases are not reported.")


def _numeric(pcm: object) -> np.ndarray:
    """``pcm`` as a numeric numpy array, or :class:`AudioError` saying what it is instead."""
    if pcm is None:
        raise AudioError("got None instead of samples")
    try:
        array = np.asarray(pcm)
    except Exception as exc:  # noqa: BLE001 - ragged lists and odd objects fail in many ways
        raise AudioError(f"not an array of samples ({exc})") from None
    if array.dtype.kind == "c":
        raise AudioError(f"complex samples ({array.dtype}) are not audio")
    if array.dtype.kind == "b":
        raise AudioError("boolean samples are not audio")
    return array
