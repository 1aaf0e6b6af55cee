"""The automatic judges' verdict on two replies shown side by side (Compare tab), computed after both are in.

The tab's judges are its own (:class:`PairJudges`): their own lock and thread, so the vote worker's judges
(:mod:`speechlm_demo.judges.background`) never wait in their queue nor they in its; the models are the process's
one shared copy. They load on that thread at the first judged pair (unless the vote worker loaded them already);
the handler awaits the result, so no Gradio worker thread is held meanwhile.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import gradio as gr
import numpy as np
import pandas as pd

from ..audio import AudioError, to_mono_float32
from ..judges.background import judges_enabled
from ..judges.scorer import Judges

log = logging.getLogger(__name__)

MISSING = "–"  # no score: Gradio would print None as "null"
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

JUDGES_PENDING = pd.DataFrame({"judge": list(SHOWN.values()), "A": "…", "B": "…"})  # while a new pair is compared


class PairJudges:
    """Judges both replies of a comparison on one thread of their own (``compare-judges``), with a lock of their
    own; the models (shared by the process) load there on first use."""

    def __init__(self, judges: Judges | None = None) -> None:
        self.judges = judges or Judges()  # cheap: the models load inside score(), on the pool's thread
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="compare-judges")

    async def table(self, audio_a: Any, text_a: str, audio_b: Any, text_b: str) -> Any:
        """One row per judge, one column per side ("–" where a side has no reply audio or a judge no score);
        with no reply audio on either side, nothing to show (``gr.skip()``: a table of dashes said nothing)."""
        if not judges_enabled():
            return pd.DataFrame({"judge": ["automatic judges are off on this host (SPEECHLM_JUDGES is off)"]})
        if not audio_a and not audio_b:
            return gr.skip()
        sides = (("A", audio_a, text_a), ("B", audio_b, text_b))
        scored = await asyncio.gather(*(asyncio.wrap_future(self._pool.submit(self._score, audio, text)) for _, audio, text in sides))
        columns: dict[str, list[Any]] = {"judge": list(SHOWN.values())}
        for (side, _, _), scores in zip(sides, scored, strict=True):
            columns[side] = [MISSING if scores.get(key) is None else round(float(scores[key]), 3) for key in SHOWN]
        return pd.DataFrame(columns)

    def _score(self, audio: Any, text: str) -> dict[str, Any]:
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
        return self.judges.score(pcm, int(rate), spoken)


judge_pair = PairJudges().table  # the Compare tab's judges
