"""The in-process Qwen rows: typed settings, where they are offered and why; no torch or transformers needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from speechlm_demo import catalog
from speechlm_demo.catalog import CatalogError, decide, load_catalog
from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.qwen_local.prompt import audio_token_count
from speechlm_demo.engines.registry import engine_class
from speechlm_demo.hardware import simulated_host

ROWS = {"qwen2.5-omni-3b": 18, "qwen2.5-omni-7b": 31, "qwen2-audio-7b": 20}


@pytest.fixture(autouse=True)
def everything_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "module_available", lambda module: True)


def test_every_row_validates_against_its_settings_class() -> None:
    entries = {entry.id: entry for entry in load_catalog().engines}
    for engine_id in ROWS:
        entry = entries[engine_id]
        engine = engine_class(entry.engine_class)(entry, "cuda:0")  # building the engine loads nothing
        assert engine.settings.model in entry.model_ids and engine.settings.dtype == "bfloat16"
        assert not engine.loaded


def test_an_unknown_or_mistyped_setting_is_named(tmp_path: Path) -> None:
    entry = load_catalog().get("qwen2.5-omni-3b")
    for bad, field in (({"voise": "Ethan"}, "voise"), ({"max_new_tokens": 0}, "max_new_tokens"),
                       ({"dtype": "int4"}, "dtype")):
        wrong = entry.model_copy(update={"defaults": {**entry.defaults, **bad}})
        with pytest.raises(EngineError, match=field):
            engine_class(wrong.engine_class)(wrong, "cuda:0")
    audio = load_catalog().get("qwen2-audio-7b")
    wrong = audio.model_copy(update={"defaults": {**audio.defaults, "tts": {"kind": "piper", "speed": 2}}})
    with pytest.raises(EngineError, match=r"defaults\.tts\.speed: not an argument of tts kind piper"):
        engine_class(wrong.engine_class)(wrong, "cuda:0")
    raw = yaml.safe_load(catalog.DEFAULT_CATALOG.read_text())
    raw["engines"] = [e for e in raw["engines"] if e["id"] in ("echo", "qwen2.5-omni-7b")]
    raw["default_engine"] = "echo"
    raw["engines"][1]["defaults"]["talker_max_new_token"] = 100
    (tmp_path / "engines.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(CatalogError, match="qwen2.5-omni-7b.*talker_max_new_token"):
        load_catalog(tmp_path / "engines.yaml")  # checked when the catalogue loads (module imported, no torch)


@pytest.mark.parametrize(
    "host, offered",
    [
        ("cpu", set()),
        ("cuda:24", {"qwen2.5-omni-3b", "qwen2-audio-7b"}),
        ("cuda:80", set(ROWS)),
        ("rocm:192", set(ROWS)),
    ],
)
def test_offered_by_accelerator_and_gpu_memory(host: str, offered: set[str]) -> None:
    entries = [entry for entry in load_catalog().engines if entry.id in ROWS]
    decisions = {entry.id: decide(entry, simulated_host(host), environ={}) for entry in entries}
    assert {engine_id for engine_id, d in decisions.items() if d.available} == offered
    for engine_id, decision in decisions.items():
        if host == "cpu":
            assert "does not run on CPU" in decision.reason
        elif not decision.available:
            assert f"needs {ROWS[engine_id]} GB" in decision.reason
        else:
            assert decision.device == f"{host.split(':')[0]}:0" and "experimental" not in decision.reason


def test_audio_placeholders_follow_the_encoder_strides() -> None:
    assert audio_token_count(3000) == 750  # 30 s of 10 ms mel frames -> 750 tokens (25 per second)
    assert audio_token_count(100) == 25
