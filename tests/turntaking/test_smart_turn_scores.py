"""``python -m speechlm_demo smart-turn``: real Smart Turn probabilities at each pause and end, median per kind."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.benchmarks.smart_turn_scores import RATE, Score, cut_points, format_report, score_files, separation
from speechlm_demo.cli import main
from speechlm_demo.measure.feeding import Prompt, prompt_from
from speechlm_demo.prompt_files import PromptAudio
from tests.conftest import require
from tests.turntaking.test_smart_turn import HAVE_MODEL


def write_clips(folder: Path) -> None:
    """A complete question (one part) and a lead-in + question (two parts, 0.8 s apart), as make-prompts writes them."""
    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)")
    from speechlm_demo.benchmarks.prompt_sets import speak
    from speechlm_demo.benchmarks.varied_prompts import write_parts

    folder.mkdir()
    for kind, parts, pause in (("complete", ("what is the capital of france",), None),
                               ("leadin", ("I have a question about space", "how far away is the moon"), 0.8)):
        write_parts(folder, kind, 0, parts, [speak(p, RATE) for p in parts], pause, {"voice": "en-us"})


def parse(out: str) -> tuple[list[list[str]], dict[str, list[str]]]:
    rows, table, *split = out.strip().split("\n\n")
    assert all(line.startswith("ends vs pauses: AUC ") for line in split)
    scores = [line.split() for line in rows.splitlines()[1:]]
    kinds = {line.split()[0]: line.split()[1:] for line in table.splitlines()[1:]}
    return scores, kinds


def test_probabilities_at_each_pause_and_end_with_a_median_per_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require(None if HAVE_MODEL else "Smart Turn missing: pip install --no-deps pipecat-ai==1.14.0")
    write_clips(tmp_path / "set")
    loose = tmp_path / "loose"
    loose.mkdir()
    shutil.copy(tmp_path / "set" / "complete-00.wav", loose / "q.wav")  # no sidecar: one score at the end
    (loose / "garbage.wav").write_bytes(b"RIFF not a wav at all")

    assert main(["smart-turn", str(tmp_path / "set"), str(loose / "q.wav"), str(loose / "garbage.wav")]) == 0
    scores, kinds = parse(capsys.readouterr().out)

    assert [(s[0], s[1], s[2]) for s in scores] == [
        ("complete-00.wav", "complete", "end"), ("leadin-00_800ms.wav", "leadin", "pause"),
        ("leadin-00_800ms.wav", "leadin", "end"), ("q.wav", "loose", "end")]
    probabilities = [float(s[4]) for s in scores]
    assert all(0.0 <= p <= 1.0 for p in probabilities) and len(set(probabilities[:3])) > 1  # real, varying outputs
    assert float(scores[3][3]) == pytest.approx(float(scores[0][3]), abs=0.05)  # no sidecar: the end estimated
    segments = json.loads((tmp_path / "set" / "leadin-00_800ms.json").read_text())["segments"]
    assert [float(s[3]) for s in scores[1:3]] == [pytest.approx(end + 0.2, abs=0.006) for _, end in segments]  # 200 ms after
    assert kinds["complete"] == ["1", "-", scores[0][4]]
    assert kinds["leadin"] == ["1", scores[1][4], scores[2][4]]
    assert kinds["loose"] == ["1", "-", scores[3][4]]


def test_the_summary_is_the_median_over_prompts_of_a_kind(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require(None if HAVE_MODEL else "Smart Turn missing: pip install --no-deps pipecat-ai==1.14.0")
    write_clips(tmp_path / "set")
    audio, _ = sf.read(tmp_path / "set" / "complete-00.wav", dtype="float32")
    for n, cut in enumerate((0.6, 0.8)):  # the question cut short twice: three "complete" prompts in all
        sf.write(tmp_path / "set" / f"cut-{n}.wav", audio[: int(cut * len(audio))], RATE)
        (tmp_path / "set" / f"cut-{n}.json").write_text('{"kind": "complete"}')
    assert main(["smart-turn", str(tmp_path / "set"), "--after-ms", "0"]) == 0
    scores, kinds = parse(capsys.readouterr().out)
    ends = [float(s[4]) for s in scores if s[1] == "complete"]
    assert len(ends) == 3 and kinds["complete"] == ["3", "-", f"{statistics.median(ends):.3f}"]


def test_cut_points_follow_the_sidecar_segments_and_stay_inside_the_clip() -> None:
    audio = np.zeros(3 * RATE, np.float32)
    parted = Prompt(Path("p.wav"), audio, 2.9, segments=[(0.3, 1.2), (2.0, 2.9)])
    assert cut_points(parted, 0.2) == [("pause", pytest.approx(1.4)), ("end", pytest.approx(3.0))]
    audio[RATE : 2 * RATE] = 0.3  # no sidecar: the end of the loud speech
    assert cut_points(prompt_from(PromptAudio(Path("q.wav"), audio), RATE, "loose"), 0.2) == [("end", pytest.approx(2.2))]


class LengthModel:
    """Stands in for Smart Turn here (the test is about reading sidecars): the probability is the heard length / 10 s."""

    def probability(self, audio: np.ndarray, rate: int) -> float:
        return len(audio) / rate / 10


def test_a_sidecar_with_nan_times_is_skipped_not_scored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    audio = np.zeros(2 * RATE, np.float32)
    audio[RATE // 2 : RATE] = 0.3
    for name, sidecar in (("nan_end", '{"speech_end_s": NaN}'), ("nan_part", '{"segments": [[0, "nan"], [0.5, 1.0]]}'),
                          ("good", '{"kind": "two", "segments": [[0.5, 0.7], [0.8, 1.0]]}')):
        sf.write(tmp_path / f"{name}.wav", audio, RATE)
        (tmp_path / f"{name}.json").write_text(sidecar)
    scores = score_files(LengthModel(), [tmp_path, tmp_path / "nan_end.wav"], after_s=0.2)
    assert [(s.name, s.at, s.at_s, s.probability) for s in scores] == [
        ("good.wav", "pause", 0.9, pytest.approx(0.09, abs=1e-3)), ("good.wav", "end", 1.2, pytest.approx(0.12, abs=1e-3))]
    assert "sidecar nan_end.json: speech_end_s" in caplog.text and "sidecar nan_part.json: segments[0]" in caplog.text


def test_missing_path_or_nothing_usable_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require(None if HAVE_MODEL else "Smart Turn missing: pip install --no-deps pipecat-ai==1.14.0")
    assert main(["smart-turn", str(tmp_path / "absent.wav")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    (tmp_path / "bad.wav").write_bytes(b"\x00" * 10)
    assert main(["smart-turn", str(tmp_path / "bad.wav")]) == 1
    assert "no usable audio file" in capsys.readouterr().err


def test_separation_is_the_chance_an_end_outscores_a_pause() -> None:
    def scores(ends: list[float], pauses: list[float]) -> list[Score]:
        return [Score("e", "k", "end", 1.0, p) for p in ends] + [Score("p", "k", "pause", 0.5, p) for p in pauses]

    perfect = separation(scores([0.9, 0.8], [0.2, 0.1, 0.3]))
    assert perfect == {"auc": 1.0, "ends": 2, "ends_above": 2, "pauses": 3, "pauses_above": 0}
    assert separation(scores([0.6, 0.6], [0.6]))["auc"] == 0.5  # ties: a coin
    inverted = separation(scores([0.1], [0.9, 0.7]))
    assert inverted["auc"] == 0.0 and inverted["pauses_above"] == 2
    assert separation(scores([0.9], [])) is None
    assert "AUC 1.00" in format_report(scores([0.9, 0.8], [0.2, 0.1, 0.3]))
