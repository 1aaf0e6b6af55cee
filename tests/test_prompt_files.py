"""Issue 13, item 6: bench and ``session prepare`` read what soundfile reads and say what they skipped and why."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.benchmarks.latency import benchmark
from speechlm_demo.measure.feeding import NOTHING_HEARD, load_prompts
from speechlm_demo.prompt_files import read_prompt_folder
from speechlm_demo.votes.listening import SessionError, prepare
from tests.engines_for_tests import ScriptedEngine, engine_entry, entry, registry_of, silence, tone

RATE = 16_000
REPO = Path(__file__).resolve().parents[1]


def speech(seconds: float = 0.6) -> np.ndarray:
    return np.concatenate([tone(seconds), silence(0.2)])


def clicks(seconds: float = 2.0) -> np.ndarray:
    """Loud single-sample clicks every 0.3 s: sound, but never speech to a VAD (no run of voiced windows)."""
    audio = silence(seconds)
    audio[:: int(0.3 * RATE)] = 0.9
    return audio


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """One prompt of every kind the issue's probe used."""
    d = tmp_path / "prompts"
    d.mkdir()
    sf.write(d / "a_wav.wav", speech(), RATE, subtype="PCM_16")
    sf.write(d / "b_flac.flac", speech(), RATE)
    sf.write(d / "c_ogg.ogg", speech(), RATE, format="OGG", subtype="VORBIS")
    sf.write(d / "d_header_only.wav", np.zeros(0, np.float32), RATE)
    sf.write(d / "e_one_sample.wav", np.array([0.5], np.float32), RATE)
    sf.write(d / "f_anti_phase.wav", np.stack([speech(), -speech()], axis=1), RATE)
    sf.write(d / "g_silent.wav", silence(1.0), RATE)
    whole = d / "h_truncated.wav"
    sf.write(whole, speech(1.0), RATE, subtype="PCM_16")
    data = whole.read_bytes()
    whole.write_bytes(data[: len(data) // 2])
    sf.write(d / "i_long.wav", np.tile(speech(), 110), RATE, subtype="PCM_16")  # 88 s
    (d / "j_notes.md").write_text("not audio")
    (d / "a_wav.txt").write_text("reference text")
    (d / ".hidden.wav").write_bytes(b"")
    return d


def test_every_soundfile_format_is_read_and_every_skip_has_its_reason(folder: Path) -> None:
    prompts, skipped = read_prompt_folder(folder, RATE)
    names = [p.path.name for p in prompts]
    assert names == ["a_wav.wav", "b_flac.flac", "c_ogg.ogg", "f_anti_phase.wav", "h_truncated.wav", "i_long.wav"]
    reasons = {s.name: s.reason for s in skipped}
    assert set(reasons) == {"d_header_only.wav", "e_one_sample.wav", "g_silent.wav", "j_notes.md"}
    assert "no samples" in reasons["d_header_only.wav"]
    assert "too short: 1 sample(s)" in reasons["e_one_sample.wav"]
    assert "silent" in reasons["g_silent.wav"]
    assert "not an audio format" in reasons["j_notes.md"]
    by_name = {p.path.name: p for p in prompts}
    anti = by_name["f_anti_phase.wav"]
    assert any("cancel out" in note for note in anti.notes) and np.abs(anti.audio).max() > 0.2  # not silence
    assert any(note.startswith("truncated: the header announces 1.20 s") for note in by_name["h_truncated.wav"].notes)
    long = by_name["i_long.wav"]
    assert len(long.audio) == 60 * RATE and any("cut to its first 60 s (of 88.0 s)" in n for n in long.notes)
    assert not by_name["a_wav.wav"].notes


def test_bench_says_why_a_prompt_made_no_turn_without_waiting_for_the_timeout(tmp_path: Path) -> None:
    sf.write(tmp_path / "clicks.wav", clicks(), RATE)
    engine = ScriptedEngine(entry())
    started = time.monotonic()
    (turn,) = benchmark(engine, load_prompts(tmp_path, RATE), tail_s=0.5, timeout_s=60)
    assert time.monotonic() - started < 30  # the 60 s timeout was not waited out
    assert turn.status == "no turn" and NOTHING_HEARD in turn.detail


def test_bench_cli_lists_what_it_skipped(folder: Path, tmp_path: Path) -> None:
    for name in ("b_flac.flac", "c_ogg.ogg", "f_anti_phase.wav", "h_truncated.wav", "i_long.wav"):
        (folder / name).unlink()
    run = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--prompts", str(folder), "--tail", "1", "--json", str(tmp_path / "r.json")],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    for name, why in (("d_header_only.wav", "no samples"), ("e_one_sample.wav", "too short"), ("g_silent.wav", "silent"), ("j_notes.md", "not an audio format")):
        assert f"skipped {name}: {why}" in run.stderr
    assert [t["prompt"] for t in json.loads((tmp_path / "r.json").read_text())["turns"]] == ["a_wav.wav"]


@pytest.fixture(scope="module")
def registry():  # type: ignore[no-untyped-def]
    return registry_of(engine_entry("zebra", "Zebra Model"), engine_entry("quokka", "Quokka Model"), engine_entry("crasher", "Crasher", "CrashingEngine"))


def test_prepare_counts_its_progress_and_lists_skipped_files(registry, folder: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for name in ("b_flac.flac", "c_ogg.ogg", "f_anti_phase.wav", "h_truncated.wav", "i_long.wav"):
        (folder / name).unlink()
    sf.write(folder / "k.flac", speech(0.8), RATE)
    calls: list[tuple[int, int]] = []
    session = prepare(registry, folder, ["zebra", "quokka"], "s", root=tmp_path / "sessions", progress=lambda done, total, _: calls.append((done, total)))
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)]  # 2 usable prompts x 2 engines, not 7 files x 2
    manifest = json.loads((session / "manifest.json").read_text())
    assert [p["source"] for p in manifest["prompts"]] == ["a_wav.wav", "k.flac"]
    assert {s["file"] for s in manifest["skipped"]} == {"d_header_only.wav", "e_one_sample.wav", "g_silent.wav", "j_notes.md"}


def test_prepare_fails_with_the_reason_when_no_prompt_is_usable_and_does_not_wait_out_non_speech(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = tmp_path / "noise"
    folder.mkdir()
    sf.write(folder / "clicks.wav", clicks(), RATE)
    started = time.monotonic()
    with pytest.raises(SessionError, match="no prompt got a playable reply from two engines") as caught:
        prepare(registry, folder, ["zebra", "quokka"], "n", root=tmp_path / "sessions", timeout_s=60)
    assert time.monotonic() - started < 40  # two prompts' worth of 60 s timeouts were not waited out
    assert "no turn was heard" in str(caught.value)
    assert not (tmp_path / "sessions").exists() or not list((tmp_path / "sessions").iterdir())


def test_session_prepare_removes_its_staging_folder_on_sigterm(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for index in range(4):
        sf.write(prompts / f"q{index}.wav", speech(0.8), RATE)
    catalog = tmp_path / "catalog.yaml"
    entries = [engine_entry(i, i.title(), "SlowEngine").model_dump(mode="json", by_alias=True) for i in ("zebra", "quokka")]
    catalog.write_text(json.dumps({"default_engine": "zebra", "engine_packages": ["tests"], "engines": entries}))
    data = tmp_path / "data"
    env = {**os.environ, "SPEECHLM_DATA_DIR": str(data), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "speechlm_demo", "session", "prepare", "--prompts", str(prompts), "--engines", "zebra,quokka", "--name", "late", "--catalog", str(catalog)],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    sessions = data / "sessions"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (sessions.is_dir() and any(p.name.startswith(".late.") for p in sessions.iterdir())):
        time.sleep(0.05)
    assert any(p.name.startswith(".late.") for p in sessions.iterdir()), "staging folder never appeared"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 143 and "stopped by SIGTERM" in err and "Traceback" not in err
    assert list(sessions.iterdir()) == []


def test_a_prompt_whose_name_is_not_utf8_is_read(tmp_path: Path) -> None:
    """A file name is bytes on Linux: one from another system's encoding is still a prompt, not a skip."""
    name = os.fsdecode(b"caf\xe9-question.wav")  # Latin-1, as an old archive would name it
    sf.write(os.fsencode(tmp_path / name), tone(0.5), 16000)
    prompts, skipped = read_prompt_folder(tmp_path, 16000)
    assert skipped == [] and len(prompts) == 1 and np.abs(prompts[0].audio).max() > 0.1
    from speechlm_demo.audio import read_audio

    audio, rate = read_audio(str(tmp_path / name))
    assert rate == 16000 and audio.size == 8000


def test_an_unreadable_file_is_named_as_text_in_its_reason(tmp_path: Path) -> None:
    (tmp_path / "notes.wav").write_text("not audio")
    _, skipped = read_prompt_folder(tmp_path, 16000)
    assert len(skipped) == 1 and "b'" not in skipped[0].reason and "could not decode" in skipped[0].reason, skipped


def test_a_float_prompt_above_full_scale_is_clipped_with_a_note(tmp_path: Path) -> None:
    sf.write(tmp_path / "loud.wav", 4.0 * tone(0.5), 16000, subtype="FLOAT")
    prompts, skipped = read_prompt_folder(tmp_path, 16000)
    assert skipped == [] and np.abs(prompts[0].audio).max() <= 1.0
    assert any("of the mix above full scale (peak 1.20) clipped" in note for note in prompts[0].notes), prompts[0].notes
    quiet_mix = np.stack([1.6 * tone(0.5) / 0.3, 0.2 * tone(0.5) / 0.3], axis=1)  # one channel over 1, the mix 0.9
    sf.write(tmp_path / "loud.wav", quiet_mix, 16000, subtype="FLOAT")
    prompts, _ = read_prompt_folder(tmp_path, 16000)
    assert not any("full scale" in note for note in prompts[0].notes), prompts[0].notes
