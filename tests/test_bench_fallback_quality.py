"""``bench``: a turn answered by the fallback is not the engine's own; its reply is not judged and its transcript
is not in the ASR WER, and the summary says how many turns the means left out."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from speechlm_demo.benchmarks.latency import TurnResult, benchmark, format_summary, summarise
from speechlm_demo.engines.base import TextOut
from speechlm_demo.measure.feeding import load_prompts
from tests.engines_for_tests import ScriptedEngine, entry, silence, tone


class AnsweredByFallback(ScriptedEngine):
    """Answers, marking the turn as the fallback's (as engines/fallback.py does), with the fallback's transcript."""

    def respond(self, turn, history, options):  # type: ignore[no-untyped-def]
        turn.timeline.extra["answered_by"] = "cascade"
        yield TextOut("what is the capital of spain", role="user")
        yield from super().respond(turn, history, options)


def test_a_fallback_reply_is_neither_judged_nor_in_the_asr_wer(tmp_path: Path) -> None:
    sf.write(tmp_path / "q.wav", np.concatenate([tone(0.6), silence(0.2)]), 16_000)
    (tmp_path / "q.txt").write_text("What is the capital of France?")
    engine = AnsweredByFallback(entry("flaky", end_silence_ms=300))
    engine.load()
    scored: list[str] = []

    def judge(audio: np.ndarray, rate: int, text: str, record: dict[str, Any]) -> dict[str, Any]:
        scored.append(text)
        return {"dnsmos_ovrl": 4.2}

    (turn,) = benchmark(engine, load_prompts(tmp_path, 16_000), tail_s=2.0, timeout_s=10.0, judge=judge)
    summary = summarise([turn])
    assert turn.status == "fallback" and summary["turns"] == {"ok": 0, "total": 1}
    assert scored == [] and turn.judges == {} and turn.not_judged == "status fallback (answered by cascade)"
    assert "judges" not in summary, f"the fallback's reply was judged as the engine's: {summary['judges']}"
    assert "asr_wer" not in summary, f"the fallback's transcript counted as the engine's ASR: {summary['asr_wer']}"
    assert summary["left_out_of_means"] == {"asr_wer": 1, "judges": 1, "fallback": 1}


def test_the_means_are_over_the_engines_own_ok_turns_and_the_summary_says_what_was_left_out() -> None:
    own = [TurnResult("a", 0, "ok", wer=0.1, judges={"dnsmos_ovrl": 3.0}), TurnResult("b", 0, "ok", wer=0.3, judges={"dnsmos_ovrl": 4.0})]
    other = [TurnResult("c", 0, "fallback", wer=0.9, not_judged="status fallback (answered by cascade)"),
             TurnResult("d", 0, "interrupted", wer=0.5, not_judged="status interrupted")]
    summary = summarise(own + other)
    assert summary["asr_wer"] == {"mean": 0.2, "n": 2} and summary["judges"] == {"dnsmos_ovrl": 3.5}
    assert summary["left_out_of_means"] == {"asr_wer": 2, "judges": 2, "fallback": 1}
    doc = {"engine": "e", "host_description": "h", "versions": {}, "summary": summary, "turns": []}
    assert ("left out of the ASR WER and judges' means (not the engine's own ok turn; 1 answered by the fallback): "
            "2 transcript(s), 2 reply(ies)") in format_summary(doc)
    assert "left_out_of_means" not in summarise(own)
