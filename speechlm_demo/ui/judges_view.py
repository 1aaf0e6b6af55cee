"""The automatic judges' verdict on two replies shown side by side (Compare tab), computed after both are in."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from ..audio import AudioError, to_mono_float32
from ..judges.background import judges_enabled
from ..judges.scorer import shared_judges

log = logging.getLogger(__name__)

SHOWN = {
    "dnsmos_ovrl": "DNSMOS OVRL",
    "dnsmos_sig": "DNSMOS SIG",
    "dnsmos_bak": "DNSMOS BAK",
    "roundtrip_wer": "round-trip WER",
    "words_per_minute": "words/min",
    "duration_s": "duration (s)",
    "leading_silence_ms": "leading silence (ms)",
    "loudness_lufs": "loudness (LUFS)",
    "clipping": "clipped share",
}


def judge_pair(audio_a: Any, text_a: str, audio_b: Any, text_b: str) -> pd.DataFrame:
    """One row per judge, one column per side (empty where a side has no reply audio)."""
    if not judges_enabled():
        return pd.DataFrame({"judge": ["automatic judges are off on this host (SPEECHLM_JUDGES=0)"]})
    columns: dict[str, list[Any]] = {"judge": list(SHOWN.values())}
    for side, audio, text in (("A", audio_a, text_a), ("B", audio_b, text_b)):
        scores = _score(audio, text)
        columns[side] = [None if scores.get(key) is None else round(float(scores[key]), 3) for key in SHOWN]
    return pd.DataFrame(columns)


def _score(audio: Any, text: str) -> dict[str, Any]:
    """Scores of a Gradio ``(rate, samples)`` value; {} when there is no audio to judge."""
    if not audio:
        return {}
    rate, samples = audio
    try:
        pcm = to_mono_float32(np.asarray(samples))
    except AudioError as exc:
        log.warning("reply audio not judged: %s", exc)
        return {}
    if not pcm.size:
        return {}
    spoken = "" if text.startswith("(no ") else text  # the tab's placeholder for a reply without text
    return shared_judges().score(pcm, int(rate), spoken)
