"""The bench CLI: real-time feeding through the app's session path, schema of its outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.benchmarks.latency import TurnResult, benchmark, format_summary, summarise, word_error_rate
from speechlm_demo.measure.feeding import estimate_speech_end, load_prompts
from tests.conftest import require
from tests.engines_for_tests import ScriptedEngine, entry, silence, tone

REPO = Path(__file__).resolve().parents[1]


def test_speech_end_estimate() -> None:
    audio = np.concatenate([silence(0.2), tone(1.0), silence(0.5)])
    assert estimate_speech_end(audio, 16_000) == pytest.approx(1.2, abs=0.02)
    assert estimate_speech_end(silence(1.0), 16_000) == 0.0


def test_prompts_with_sidecars_and_garbage(tmp_path: Path) -> None:
    sf.write(tmp_path / "a.wav", np.concatenate([tone(0.5), silence(0.3)]), 8000)
    (tmp_path / "a.txt").write_text("hello world\n")
    (tmp_path / "a.json").write_text(json.dumps({"speech_end_s": 0.42}))
    sf.write(tmp_path / "b.wav", tone(0.5), 16000)
    (tmp_path / "broken.wav").write_bytes(b"RIFF nonsense")
    prompts = load_prompts(tmp_path, 16000)
    assert [p.path.name for p in prompts] == ["a.wav", "b.wav"]
    assert prompts[0].speech_end_s == 0.42 and prompts[0].end_source == "sidecar" and prompts[0].reference == "hello world"
    assert prompts[1].end_source == "estimated"
    with pytest.raises(FileNotFoundError):
        load_prompts(tmp_path / "missing", 16000)


def test_wer_and_summary() -> None:
    assert word_error_rate("What is the capital of France?", "what is the capital of france") == 0.0
    assert word_error_rate("one two three four", "one two three") == 0.25
    assert word_error_rate(None, "x") is None
    assert word_error_rate("…", "well") is None and word_error_rate(" ?! ", "") is None  # no words to count against (was 2.0)
    turns = [TurnResult("a", 0, "ok", {"voice_to_voice_ms": v}) for v in (100, 200, 300)] + [TurnResult("b", 0, "failed")]
    summary = summarise(turns)
    assert summary["voice_to_voice_ms"]["p50"] == 200 and summary["voice_to_voice_ms"]["n"] == 3
    assert summary["turns"] == {"ok": 3, "total": 4}
    assert "decided_before_transcript" not in summary  # no transcript marks: nothing to say


def test_a_judge_missing_on_the_first_reply_still_has_its_mean() -> None:
    first = TurnResult("a.wav", 0, "ok", judges={"duration_s": 1.0, "error": "dnsmos: boom"})  # DNSMOS raised here
    rest = [TurnResult(f"{i}.wav", 0, "ok", judges={"duration_s": 2.0, "dnsmos_ovrl": 3.0, "error": ""}) for i in range(5)]
    judges = summarise([first, *rest])["judges"]
    assert judges["dnsmos_ovrl"] == 3.0 and judges["duration_s"] == round(11 / 6, 3)


def test_the_summary_counts_decisions_taken_before_the_transcript_was_in() -> None:
    """The end of turn waited for the words (decided after ``asr_final``) or did not (audio alone)."""
    def turn(detected: float, asr_final: float, status: str = "ok") -> TurnResult:
        return TurnResult("q", 0, status, marks_ms={"turn_detected": detected, "asr_final": asr_final})

    turns = [turn(200, 180), turn(190, 190), turn(120, 180), turn(100, 300, "failed"), TurnResult("q", 0, "ok")]
    summary = summarise(turns)
    assert summary["decided_before_transcript"] == {"turns": 1, "total": 3}
    doc = {"engine": "e", "host_description": "h", "versions": {}, "summary": summary, "turns": []}
    assert "end of turn decided before the transcript was in: 1/3 turns" in format_summary(doc)


@pytest.mark.slow
def test_bench_cli_on_echo(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for name, seconds in (("one", 0.8), ("two", 1.2)):
        sf.write(prompts / f"{name}.wav", np.concatenate([tone(seconds), silence(0.2)]), 16000)
        (prompts / f"{name}.json").write_text(json.dumps({"speech_end_s": seconds}))
    out_json, out_csv, out_png = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.png"
    run = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--prompts", str(prompts), "--repeat", "2",
         "--json", str(out_json), "--csv", str(out_csv), "--plot", str(out_png), "--tail", "1.5"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads(out_json.read_text())
    v2v, detect = doc["summary"]["voice_to_voice_ref_ms"], doc["summary"]["turn_detect_ref_ms"]
    assert doc["summary"]["measured_from"]["voice_to_voice_ref_ms"] == "reference_speech_end"
    assert doc["summary"]["measured_from"]["voice_to_voice_ms"] == "user_speech_end"
    assert doc["turns"][0]["measured_from"]["voice_to_voice_ms"] == "user_speech_end"
    assert v2v["n"] == 4 and 350 <= v2v["p50"] <= v2v["p95"] < 1000  # echo: the 400 ms silence rule + ~0 engine time
    assert 350 <= detect["p50"] <= detect["p95"] < 1000
    assert len(doc["turns"]) == 4 and all(t["status"] == "ok" for t in doc["turns"])
    assert doc["seed"] == 0  # every turn samples with the same seed unless told otherwise
    marks = doc["turns"][0]["marks_ms"]
    assert marks["reference_speech_end"] == 0.0 and "user_speech_end" in marks and marks["first_audio_out"] > 0
    assert "voice_to_voice_ms" in run.stdout and "python" in doc["versions"] and doc["host"]["accelerator"]
    assert out_csv.read_text().count("\n") == 5 and out_png.stat().st_size > 1000


def test_bench_cli_errors(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--prompts", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no usable prompt audio files" in run.stderr and "holds no audio files" in run.stderr
    run = subprocess.run([sys.executable, "-m", "speechlm_demo", "bench", "--engine", "nope", "--prompts", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "unknown engine" in run.stderr
    sf.write(tmp_path / "q.wav", tone(0.5), 16000)
    run = subprocess.run([sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--prompts", str(tmp_path),
                          "--plot", str(tmp_path / "missing" / "b.png")], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "no folder for the output file" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run([sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--prompts", str(tmp_path),
                          "--seed", "lucky"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "a whole number or 'none', not 'lucky'" in run.stderr


@pytest.mark.slow
def test_a_pause_longer_than_the_silence_rule_counts_as_a_premature_cut(tmp_path: Path) -> None:
    from speechlm_demo.benchmarks.latency import benchmark
    from speechlm_demo.engines.echo import EchoEngine
    from tests.engines_for_tests import entry

    sf.write(tmp_path / "paused.wav", np.concatenate([tone(0.4), silence(0.9), tone(0.6), silence(0.2)]), 16000)
    (tmp_path / "paused.json").write_text(json.dumps({"speech_end_s": 1.9}))
    (turn,) = benchmark(EchoEngine(entry("echo", end_silence_ms=400)), load_prompts(tmp_path, 16000), tail_s=1.5)
    assert turn.premature_cuts == 1
    assert turn.status == "ok" and turn.metrics["turn_detect_ms"] > 0
    assert summarise([turn])["premature_cuts"] == {"prompts_cut": 1, "total": 1, "rate": 1.0}


def test_make_prompts_without_espeak_is_a_clear_error(tmp_path: Path) -> None:
    env = {"PATH": str(tmp_path), "PYTHONPATH": str(REPO)}  # no espeak-ng on this PATH
    run = subprocess.run([sys.executable, "-m", "speechlm_demo", "make-prompts", str(tmp_path / "p")],
                         cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
    assert run.returncode == 2 and "espeak-ng is not installed" in run.stderr and "Traceback" not in run.stderr


def test_make_prompts_writes_the_three_sets_the_noisy_one_25_db_under_the_speech(tmp_path: Path) -> None:
    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)")
    run = subprocess.run([sys.executable, "-m", "speechlm_demo", "make-prompts", str(tmp_path)],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "wrote 10 complete, 18 paused, 10 noisy and 3 interrupt prompts" in run.stdout
    paused = json.loads((tmp_path / "paused" / "p00_900ms.json").read_text())
    assert paused["pause_end_s"] - paused["pause_start_s"] == pytest.approx(0.9, abs=0.002) and paused["pause_end_s"] < paused["speech_end_s"]
    audio, rate = sf.read(tmp_path / "paused" / "p00_900ms.wav", dtype="float32")
    gap = audio[int((paused["pause_start_s"] + 0.01) * rate) : int((paused["pause_end_s"] - 0.01) * rate)]
    assert np.abs(gap).max() < 0.01  # the cues mark the silence exactly
    cut = json.loads((tmp_path / "interrupt" / "i00.json").read_text())
    assert cut["question_end_s"] + 2.5 == pytest.approx(cut["interrupt_start_s"], abs=0.002) and cut["interrupt_end_s"] == cut["speech_end_s"]
    for name in ("q00", "q05"):
        clean, _ = sf.read(tmp_path / "complete" / f"{name}.wav", dtype="float32")
        noisy, _ = sf.read(tmp_path / "noisy" / f"{name}.wav", dtype="float32")
        assert len(noisy) == len(clean) and (tmp_path / "noisy" / f"{name}.json").read_text() == (tmp_path / "complete" / f"{name}.json").read_text()
        speech_db = 10 * np.log10(np.mean(np.square(clean[np.abs(clean) > 0.01])))
        lead_db = 10 * np.log10(np.mean(np.square(noisy[:4_000])))  # the 0.3 s before the speech: noise only
        assert lead_db == pytest.approx(speech_db - 25.0, abs=1.0)


class _AnsweredByFallback(ScriptedEngine):
    """Answers, but marks the turn as answered by a fallback engine (as engines/fallback.py does)."""

    def respond(self, turn, history, options):  # type: ignore[no-untyped-def]
        turn.timeline.extra["answered_by"] = "echo"
        yield from super().respond(turn, history, options)


def test_a_turn_answered_by_the_fallback_is_not_counted_as_the_engines_own(tmp_path: Path) -> None:
    sf.write(tmp_path / "q.wav", np.concatenate([tone(0.6), silence(0.2)]), 16_000)
    engine = _AnsweredByFallback(entry("flaky", end_silence_ms=300))
    engine.load()
    (result,) = benchmark(engine, load_prompts(tmp_path, 16_000), tail_s=2.0, timeout_s=10.0)
    assert result.status == "fallback" and "fallback echo" in result.detail
    assert summarise([result])["turns"] == {"ok": 0, "total": 1}


def test_bench_refuses_startup_via_webrtc() -> None:
    run = subprocess.run([sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--startup", "--via", "webrtc"],
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2 and "--startup times the app's launch; --via webrtc runs prompts" in run.stderr


class _RecordsOptions(ScriptedEngine):
    """Remembers the options each turn was answered with."""

    seen: list[int | None]

    def respond(self, turn, history, options):  # type: ignore[no-untyped-def]
        self.seen.append(options.seed)
        yield from super().respond(turn, history, options)


def test_every_turn_is_answered_with_the_benchmarks_options(tmp_path: Path) -> None:
    from speechlm_demo.engines.base import SessionOptions

    sf.write(tmp_path / "q.wav", np.concatenate([tone(0.6), silence(0.2)]), 16_000)
    engine = _RecordsOptions(entry("seeded", end_silence_ms=300))
    engine.seen = []
    engine.load()
    benchmark(engine, load_prompts(tmp_path, 16_000), repeat=2, tail_s=2.0, timeout_s=10.0, options=SessionOptions(seed=3))
    assert engine.seen == [3, 3]
