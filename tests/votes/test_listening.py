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
from speechlm_demo.votes.listening import (
    ListeningSession,
    SessionError,
    SessionExists,
    check_name,
    list_sessions,
    prepare,
)
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


def test_preparing_again_replaces_the_session_only_when_asked(registry: EngineRegistry, prompts: Path, tmp_path: Path) -> None:
    prepare(registry, prompts, ["zebra", "quokka"], "s", root=tmp_path)
    before = sorted(p.name for p in (tmp_path / "s" / "audio").iterdir())
    (prompts / "q1.wav").unlink()
    with pytest.raises(SessionExists, match=r"already exists; give --replace.*votes already cast keep the tag 's'"):
        prepare(registry, prompts, ["zebra", "quokka"], "s", root=tmp_path)
    assert len(ListeningSession("s", tmp_path).prompts) == 2 and sorted(p.name for p in (tmp_path / "s" / "audio").iterdir()) == before
    prepare(registry, prompts, ["zebra", "quokka"], "s", root=tmp_path, replace=True)
    assert len(ListeningSession("s", tmp_path).prompts) == 1


@pytest.fixture(scope="module")
def good_manifest(registry: EngineRegistry, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A manifest as ``prepare`` writes it (made once: preparing runs the engines in real time)."""
    folder = tmp_path_factory.mktemp("manifest")
    sf.write(folder / "q0.wav", np.concatenate([tone(0.5), silence(0.2)]), 16_000)
    sf.write(folder / "q1.wav", np.concatenate([tone(0.7), silence(0.2)]), 16_000)
    return json.loads((prepare(registry, folder, ["zebra", "quokka"], "w", root=folder / "sessions") / "manifest.json").read_text())


@pytest.mark.parametrize(
    ("manifest", "problem"),
    [
        ({"name": "w", "engines": [], "prompts": "x"}, "engines: Input should be an object; prompts: Input should be a valid array"),
        ([1, 2], "manifest: Input should be an object"),
        ("PROMPT_WITHOUT_RATE", "sample_rate: Field required"),
        ("REPLY_OF_UNLISTED_ENGINE", "replies of engines the manifest does not list: ghost"),
        ("PROMPTS_AS_STRINGS", "prompts.0: Input should be an object"),
    ],
)
def test_a_manifest_with_wrong_types_is_a_damaged_session(good_manifest: dict, tmp_path: Path, manifest: object, problem: str) -> None:
    good = json.loads(json.dumps(good_manifest))
    (tmp_path / "w").mkdir()
    if manifest == "PROMPT_WITHOUT_RATE":
        del good["prompts"][0]["replies"]["zebra"]["sample_rate"]
        manifest = good
    elif manifest == "REPLY_OF_UNLISTED_ENGINE":
        good["prompts"][1]["replies"]["ghost"] = good["prompts"][1]["replies"]["zebra"]
        manifest = good
    elif manifest == "PROMPTS_AS_STRINGS":
        manifest = good | {"prompts": ["q0.wav"]}
    (tmp_path / "w" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SessionError, match="listening session 'w' is damaged: ") as info:
        ListeningSession("w", tmp_path)
    assert problem in str(info.value)


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


def test_cli_refuses_to_replace_a_session_unless_asked_and_lists_unreadable_ones(prompts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    catalog = tmp_path / "catalog.yaml"
    entries = [engine_entry(i, i.title() + " Model").model_dump(mode="json", by_alias=True) for i in ("zebra", "quokka")]
    catalog.write_text(json.dumps({"default_engine": "zebra", "engine_packages": ["tests"], "engines": entries}))
    prepare_cli = ["session", "prepare", "--prompts", str(prompts), "--engines", "zebra,quokka", "--name", "night", "--catalog", str(catalog)]
    assert main(prepare_cli) == 0
    capsys.readouterr()
    assert main(prepare_cli) == 2
    assert "already exists; give --replace" in capsys.readouterr().err
    assert main([*prepare_cli, "--replace"]) == 0
    capsys.readouterr()
    (tmp_path / "data" / "sessions" / "wrong").mkdir()
    (tmp_path / "data" / "sessions" / "wrong" / "manifest.json").write_text('{"name": "wrong", "engines": [], "prompts": "x"}')
    assert main(["session", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "night" and lines[1].startswith("wrong\tunreadable: listening session 'wrong' is damaged: engines:"), lines
