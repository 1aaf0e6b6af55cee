"""All judges of one reply in one call: DNSMOS, round-trip WER and speaking rate, signal figures, latencies.

A judge that cannot run (no ``speechmos`` models, an ASR that fails to load, audio too short) leaves its
figures empty and adds a line to ``error``; the other judges still report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ..load_once import once_per_process
from .acoustics import signal_judges, words_per_minute
from .dnsmos import Dnsmos
from .latency import latency_judges
from .roundtrip import RoundTrip, default_asr

log = logging.getLogger(__name__)

shared_dnsmos = once_per_process(Dnsmos)  # onnxruntime sessions may be run from several threads at once
shared_asr = once_per_process(default_asr)  # so may CTranslate2's Whisper (calls queue inside it)


class Judges:
    """Lazily loaded judge models, one reply at a time (a lock). Each user (the vote worker, the Compare tab)
    has its own ``Judges`` and lock, so neither waits for the other's queue; the models themselves are loaded
    once per process and shared (a second copy cost ~335 MB). Load them on the thread that scores, not on a
    UI thread."""

    def __init__(
        self,
        *,
        dnsmos: bool = True,
        roundtrip: bool = True,
        make_asr: Callable[[], Any] = shared_asr,
        make_dnsmos: Callable[[], Dnsmos] = shared_dnsmos,
    ) -> None:
        self.use_dnsmos = dnsmos
        self.use_roundtrip = roundtrip
        self._make_dnsmos = make_dnsmos
        self._dnsmos: Dnsmos | None = None
        self._roundtrip = RoundTrip(make_asr)
        self._lock = threading.Lock()

    def _mos(self) -> Dnsmos:
        if self._dnsmos is None:
            self._dnsmos = self._make_dnsmos()
        return self._dnsmos

    def score(self, audio: np.ndarray, sample_rate: int, reply_text: str = "", timeline: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Every judge's figures for one reply (``None`` where a judge could not say), plus ``asr_text``
        and ``error`` ("" when every judge ran)."""
        audio = np.nan_to_num(np.asarray(audio, dtype=np.float32).reshape(-1), nan=0.0, posinf=0.0, neginf=0.0)  # a bad sample is silence
        out: dict[str, Any] = {**signal_judges(audio, sample_rate), **latency_judges(timeline)}
        errors: list[str] = []
        with self._lock:
            if self.use_dnsmos:
                try:
                    out.update(self._mos().score(audio, sample_rate).to_dict() if np.any(audio) else {})  # silence: nothing to rate
                except Exception as exc:  # noqa: BLE001 - a judge failing must not lose the others
                    log.warning("DNSMOS failed: %s", exc)
                    errors.append(f"dnsmos: {exc}")
            if self.use_roundtrip:
                try:
                    out.update(self._roundtrip.judge(audio, sample_rate, reply_text))
                except Exception as exc:  # noqa: BLE001
                    log.warning("round-trip ASR failed: %s", exc)
                    errors.append(f"roundtrip: {exc}")
        spoken = reply_text or out.get("asr_text") or ""
        out["words_per_minute"] = words_per_minute(spoken, out["speech_s"])
        out["error"] = "; ".join(errors)
        return out
