"""Listening sessions: replies generated ahead of time, stored without engine names in file names, served as pairs."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.cli import main
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.votes.listening import ListeningSession, SessionError, check_name, list_sessions, prepare
from tests.engines_for_tests import engine_entry, registry_of, silence, tone

ENGINES = ["zebra", "quokka", "crasher", "broken"]


@pytest.fixture(scope="module")
def registry() -> EngineRegistry:
    broken = engine_entry("broken", "Broken Model").model_copy(update={"engine_class": "tests.no_such_module:Nothing"})
    return registry_of(
        engine_entry("zebra", "Zebra Model"),
        engine_entry("quokka", "Quokka Model"),
        engine_entry("crasher", "Crasher Model", "CrashingEngine"),
        broken,
    )


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    folder = tmp_path / "prompts"
    folder.mkdir()
    for index in range(2):
        sf.write(folder / f"q{index}.wav", np.concatenate([tone(0.5 + 0.2 * index), silence(0.2)]), 16_000)
    (folder / "q0.txt").write_text("what is a zebra")
    (folder / "notes.txt").write_text("not a prompt")
    return folder


def test_prepare_writes_every_reply_and_failures_without_naming_files_after_engines(registry: EngineRegistry, prompts: Path, tmp_path: Path) -> None:
    folder = prepare(registry, prompts, ENGINES, "evening-1", root=tmp_path / "sessions")
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["engines"]) == set(ENGINES) and len(manifest["prompts"]) == 2
    assert manifest["prompts"][0]["reference"] == "what is a zebra"
    for prompt in manifest["prompts"]:
        replies = prompt["replies"]
        assert replies["zebra"]["status"] == replies["quokka"]["status"] == "ok"
        assert replies["zebra"]["timeline"]["metrics"]["voice_to_voice_ms"] > 0
        assert replies["crasher"]["status"] == "failed" and replies["crasher"]["file"] is None
        assert replies["broken"]["status"] == "failed" and "could not load" in replies["broken"]["message"]
    files = sorted(p.name for p in (folder / "audio").iterdir())
    assert len(files) == 2 + 2 * 2  # the prompts and two replies each
    assert not any(engine in name for name in files for engine in ENGINES)
    assert list_sessions(tmp_path / "sessions") == ["evening-1"]
    assert not [p for p in (tmp_path / "sessions").iterdir() if p.name.startswith(".")], "staging folder left behind"


def test_a_session_serves_pairs_of_engines_that_answered(registry: EngineRegistry, prompts: Path, tmp_path: Path) -> None:
    prepare(registry, prompts, ENGINES, "s", root=tmp_path)
    session = ListeningSession("s", tmp_path)
    assert len(session.usable) == 2 and "zebra" not in session.describe().lower()
    prompt = session.draw(random.Random(1))
    assert {e.id for e in session.candidates(prompt)} == {"zebra", "quokka"}
    audio, rate = session.prompt_audio(prompt)
    assert rate == 16_000 and np.abs(audio).max() > 0.2
    pair = session.comparison(prompt, "quokka", "zebra")
    assert pair.a.engine_id == "quokka" and pair.b.engine_id == "zebra"
    assert pair.a.ok and len(pair.a.audio) > 0.3 * pair.a.sample_rate and np.abs(pair.a.audio).max() > 0.1
    assert pair.a.latency_ms is not None and pair.a.reply_text.startswith("turn")


def test_preparing_again_replaces_the_session(registry: EngineRegistry, prompts: Path, tmp_path: Path) -> None:
    prepare(registry, prompts, ["zebra", "quokka"], "s", root=tmp_path)
    (prompts / "q1.wav").unlink()
    prepare(registry, prompts, ["zebra", "quokka"], "s", root=tmp_path)
    assert len(ListeningSession("s", tmp_path).prompts) == 1


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "x" * 65, ".hidden", "a..b", "naïve"])
def test_unsafe_names_are_refused(name: str) -> None:
    with pytest.raises(SessionError):
        check_name(name)


def test_bad_requests_and_damaged_sessions_are_explained(registry: EngineRegistry, prompts: Path, tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="at least two"):
        prepare(registry, prompts, ["zebra"], "s", root=tmp_path)
    with pytest.raises(SessionError, match="unknown engine"):
        prepare(registry, prompts, ["zebra", "nope"], "s", root=tmp_path)
    with pytest.raises(SessionError, match="does not exist"):
        prepare(registry, tmp_path / "missing", ["zebra", "quokka"], "s", root=tmp_path)
    with pytest.raises(SessionError, match="no listening session"):
        ListeningSession("missing", tmp_path)
    with pytest.raises(SessionError, match=r"no prompt got a playable reply from two engines.*crasher: 0/2 playable \(Crasher Model failed: model exploded\)"):
        prepare(registry, prompts, ["zebra", "crasher"], "lonely", root=tmp_path)
    assert not (tmp_path / "lonely").exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    good = prepare(registry, prompts, ["zebra", "quokka"], "lonely", root=tmp_path)
    manifest = json.loads((good / "manifest.json").read_text())
    for prompt in manifest["prompts"]:
        prompt["replies"]["quokka"]["status"] = "failed"
    (good / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SessionError, match="two engines answered"):
        ListeningSession("lonely", tmp_path)
    (tmp_path / "torn").mkdir()
    (tmp_path / "torn" / "manifest.json").write_text("{not json")
    with pytest.raises(SessionError, match="damaged"):
        ListeningSession("torn", tmp_path)


def test_a_missing_reply_file_fails_only_that_side(registry: EngineRegistry, prompts: Path, tmp_path: Path) -> None:
    folder = prepare(registry, prompts, ["zebra", "quokka"], "s", root=tmp_path)
    session = ListeningSession("s", tmp_path)
    prompt = session.prompts[0]
    (folder / "audio" / prompt.replies["zebra"]["file"]).unlink()
    pair = session.comparison(prompt, "zebra", "quokka")
    assert pair.a.status == "failed" and "unreadable" in pair.a.message and pair.b.ok


def test_cli_prepares_and_lists_sessions(prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "catalog.yaml"
    entries = [engine_entry(i, i.title() + " Model").model_dump(mode="json", by_alias=True) for i in ("zebra", "quokka")]
    catalog.write_text(json.dumps({"default_engine": "zebra", "engine_packages": ["tests"], "engines": entries}))
    assert main(["session", "list"]) == 0
    assert "no listening sessions" in capsys.readouterr().out
    assert main(["session", "prepare", "--prompts", str(prompts), "--engines", "zebra,quokka", "--name", "cli-1", "--catalog", str(catalog)]) == 0
    assert "?session=cli-1" in capsys.readouterr().out
    assert main(["session", "list"]) == 0
    assert capsys.readouterr().out.split() == ["cli-1"]
    assert main(["session", "prepare", "--prompts", str(prompts), "--engines", "zebra,nope", "--name", "x", "--catalog", str(catalog)]) == 2
    assert "unknown engine" in capsys.readouterr().err
    assert main(["session", "prepare", "--prompts", str(prompts), "--engines", "zebra,quokka", "--name", "../x", "--catalog", str(catalog)]) == 2
