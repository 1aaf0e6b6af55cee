"""The cascade's stage settings (``asr`` / ``llm`` / ``tts``): every argument of every stage kind is checked by
type and range when the catalogue loads, named by stage, kind and field, and the stage gets the checked values."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from speechlm_demo.catalog import DEFAULT_CATALOG, CatalogError, load_catalog
from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.cascade.asr import ASR_KINDS
from speechlm_demo.engines.cascade.llm import LLM_KINDS, OpenAICompatibleLLM, build_llm
from speechlm_demo.engines.cascade.pipeline import CascadeEngine
from speechlm_demo.engines.cascade.stage_args import build_stage
from speechlm_demo.engines.cascade.tts_kinds import TTS_KINDS
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.engines.qwen_local.settings import Qwen2AudioSettings
from tests.engines_for_tests import entry

CASCADE = "speechlm_demo.engines.cascade.pipeline:CascadeEngine"
NOWHERE = {"kind": "openai", "base_url": "http://127.0.0.1:9/v1", "model": "m"}  # built, never called


def write(tmp_path: Path, defaults: dict) -> Path:
    """A catalogue of one cascade row with these ``defaults``."""
    row = {"id": "cascade", "label": "Cascade", "family": "cascade", "duplex": "half", "class": CASCADE,
           "accelerators": ["cpu"], "licence": "Apache-2.0", "defaults": defaults}
    path = tmp_path / "engines.yaml"
    path.write_text(yaml.safe_dump({"default_engine": "cascade", "engines": [row]}))
    return path


@pytest.mark.parametrize(
    ("stage", "config", "field", "reason"),
    [
        ("asr", {"kind": "faster-whisper", "cpu_threads": "two"}, "cpu_threads", "Input should be a valid integer"),
        ("asr", {"num_workers": 0}, "num_workers", "Input should be greater than or equal to 1"),
        ("asr", {"beam_size": 0}, "beam_size", "Input should be greater than or equal to 1"),
        ("asr", {"min_window_s": 31}, "min_window_s", "Input should be less than or equal to 30"),
        ("asr", {"vocabulary": "tiny"}, "vocabulary", "Input should be 'full' or 'english'"),
        ("asr", {"language": False}, "language", "Input should be a valid string"),  # YAML's `language: no`
        ("llm", {"kind": "llama-cpp", "repeat_penalty": 0}, "repeat_penalty", "Input should be greater than 0"),
        ("llm", {"kind": "llama-cpp", "n_threads": -1}, "n_threads", "Input should be greater than or equal to 0"),
        ("llm", {"kind": "llama-cpp", "temperature": -0.5}, "temperature", "Input should be greater than or equal to 0"),
        ("llm", {**NOWHERE, "read_timeout": -1}, "read_timeout", "Input should be greater than 0"),
        ("llm", {**NOWHERE, "first_byte_timeout": True}, "first_byte_timeout", "Input should be a valid number"),
        ("llm", {**NOWHERE, "connect_timeout": "5"}, "connect_timeout", "Input should be a valid number"),
        ("llm", {**NOWHERE, "max_tokens": 0}, "max_tokens", "Input should be greater than or equal to 1"),
        ("tts", {"kind": "piper", "length_scale": 0}, "length_scale", "Input should be greater than 0"),
        ("tts", {"kind": "espeak", "speed_wpm": 40}, "speed_wpm", "Input should be greater than or equal to 80"),
    ],
)
def test_a_bad_value_stops_the_catalogue_naming_stage_kind_and_field(
    tmp_path: Path, stage: str, config: dict, field: str, reason: str
) -> None:
    kind = config.get("kind", {"asr": "faster-whisper", "llm": "llama-cpp", "tts": "piper"}[stage])
    with pytest.raises(CatalogError) as caught:
        load_catalog(write(tmp_path, {stage: config}))
    assert f"entry 'cascade', field defaults.{stage}.{field}: {reason}" in str(caught.value)
    assert f"({stage} kind {kind})" in str(caught.value)
    assert f", not {config[field]!r} ({type(config[field]).__name__})" in str(caught.value)  # a quoted "5" shows as such


def test_an_unknown_argument_is_named_with_those_the_kind_takes(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"field defaults\.tts\.speed: not an argument of tts kind espeak \(known: "
                                           r"executable, speed_wpm, voice\)"):
        load_catalog(write(tmp_path, {"tts": {"kind": "espeak", "speed": 200}}))


@pytest.mark.parametrize(
    ("stage", "config", "problem"),
    [
        ("asr", {"vocabulary": "english", "language": "de"},
         "vocabulary 'english' needs language 'en', not 'de' (asr kind faster-whisper)"),
        ("llm", {"kind": "openai", "model": "m"}, "needs 'base_url' and 'model' (or 'base_url_env' for the URL) (llm kind openai)"),
        ("llm", {"kind": "openai", "base_url_env": "OLLAMA_URL"}, "needs 'base_url' and 'model'"),
    ],
)
def test_a_combination_the_stage_cannot_run_stops_the_catalogue(tmp_path: Path, stage: str, config: dict, problem: str) -> None:
    with pytest.raises(CatalogError) as caught:
        load_catalog(write(tmp_path, {stage: config}))
    assert f"entry 'cascade', field defaults.{stage}: {problem}" in str(caught.value)
    load_catalog(write(tmp_path, {"asr": {"vocabulary": "english"}, "llm": {"kind": "openai", "base_url_env": "X", "model": "m"}}))


def test_the_shipped_cascade_rows_keep_their_stage_settings() -> None:
    """Effective settings equal the YAML's stage mappings; whole numbers given for float arguments become floats."""
    raw = yaml.safe_load(DEFAULT_CATALOG.read_text())
    rows = {row["id"]: row["defaults"] for row in raw["engines"] if row["class"] == CASCADE}
    assert len(rows) >= 4
    catalog = load_catalog()
    for row_id, defaults in rows.items():
        settings = catalog.get(row_id).effective_settings
        assert settings is not None
        for stage in ("asr", "llm", "tts"):
            assert settings[stage] == defaults[stage] and list(settings[stage]) == list(defaults[stage]), (row_id, stage)
    offline = catalog.get("cascade").effective_settings
    ollama = catalog.get("cascade-ollama").effective_settings
    assert offline is not None and ollama is not None
    assert json.dumps(offline["asr"]["min_window_s"]) == "6.0" and json.dumps(ollama["llm"]["first_byte_timeout"]) == "60.0"


def test_the_stage_is_built_with_the_checked_values() -> None:
    """A whole number for a timeout reaches the HTTP client as a float, through the engine's settings."""
    engine = CascadeEngine(entry("cascade", llm={**NOWHERE, "read_timeout": 5, "first_byte_timeout": 2}))
    assert engine.settings.llm == {**NOWHERE, "read_timeout": 5.0, "first_byte_timeout": 2.0}
    http = build_llm(engine.settings.llm)._http  # type: ignore[attr-defined]
    assert (http.read_timeout, http.first_byte_timeout) == (5.0, 2.0)
    assert type(http.read_timeout) is float and type(build_llm({**NOWHERE, "read_timeout": 7})._http.read_timeout) is float  # type: ignore[attr-defined]


def test_a_builder_refuses_what_the_catalogue_refuses() -> None:
    with pytest.raises(EngineError, match=r"llm\.max_tokens: Input should be greater than or equal to 1, not 0 \(int\) \(llm kind openai\)"):
        build_llm({**NOWHERE, "max_tokens": 0})
    with pytest.raises(EngineError, match=r"llm\.device: not an argument of llm kind llama-cpp \(known: "):
        build_llm({"kind": "llama-cpp", "device": "cpu"}, device="cpu")  # the engine passes the device, a mapping never


def test_the_other_stage_mappings_are_checked_too() -> None:
    """The turn layer's ``listen_asr`` and the Qwen2-Audio row's ``tts`` go through the same check."""
    with pytest.raises(EngineError, match=r"defaults\.listen_asr\.num_workers: Input should be greater than or equal to 1, "
                                          r"not 0 \(int\) \(asr kind faster-whisper\)"):
        EchoEngine(entry("echo", endpointing="transcript", listen_asr={"num_workers": 0}))
    with pytest.raises(ValidationError, match=r"tts\.length_scale\n.*Input should be greater than 0, not -1.0 \(float\) \(tts kind piper\)"):
        Qwen2AudioSettings.model_validate({"tts": {"length_scale": -1.0}})


STAGES = {"asr": ASR_KINDS, "llm": LLM_KINDS, "tts": TTS_KINDS}


@pytest.mark.parametrize(
    ("stage", "config", "problem"),
    [
        ("asr", {"kind": "faster-whisper", "vocabulary": "english", "language": "de"},
         r"^asr: vocabulary 'english' needs language 'en', not 'de' \(asr kind faster-whisper\)$"),
        ("asr", {"kind": "faster-whisper", "num_workers": 0},
         r"^asr\.num_workers: Input should be greater than or equal to 1, not 0 \(int\) \(asr kind faster-whisper\)$"),
        ("llm", {"kind": "llama-cpp", "temperature": "hot"}, r"^llm\.temperature: Input should be a valid number"),
        ("llm", {"kind": "openai", "model": "m"}, r"^llm: needs 'base_url' and 'model' .*\(llm kind openai\)$"),
        ("llm", {**NOWHERE, "read_timeout": -1}, r"^llm\.read_timeout: Input should be greater than 0, not -1"),
        ("tts", {"kind": "piper", "length_scale": 0}, r"^tts\.length_scale: Input should be greater than 0"),
        ("tts", {"kind": "espeak", "speed_wpm": 40, "executable": "/bin/true"}, r"^tts\.speed_wpm: .* than or equal to 80"),
        ("tts", {"kind": "openai", "model": "m", "base_url": "http://127.0.0.1:9/v1", "timeout_s": 0},
         r"^tts\.timeout_s: Input should be greater than 0, not 0 \(int\) \(tts kind openai\)$"),
    ],
)
def test_a_stage_built_directly_is_refused_as_the_catalogue_refuses_it(
    monkeypatch: pytest.MonkeyPatch, stage: str, config: dict, problem: str
) -> None:
    """``FasterWhisperASR(vocabulary="english", language="de")`` must not decode German with the English-only model:
    the class checks what ``build_stage`` checks, with the same message, before it loads anything."""
    for library in ("faster_whisper", "llama_cpp", "piper", "onnxruntime"):
        monkeypatch.setitem(sys.modules, library, None)  # importing one fails: nothing is loaded before the check
    cls = STAGES[stage][config["kind"]]
    arguments = {key: value for key, value in config.items() if key != "kind"}
    with pytest.raises(EngineError, match=problem) as direct:
        cls(**arguments)
    with pytest.raises(EngineError) as built:
        build_stage(stage, STAGES[stage], config)
    assert str(direct.value) == str(built.value)


def test_a_stage_built_directly_gets_the_checked_values() -> None:
    """A whole number for a float argument reaches the class as a float, given by name or by position."""
    http = OpenAICompatibleLLM("http://127.0.0.1:9/v1", "m", read_timeout=7)._http  # type: ignore[attr-defined]
    assert type(http.read_timeout) is float and http.read_timeout == 7.0
    with pytest.raises(EngineError, match=r"^llm\.model: Input should be a valid string, not 5 \(int\) \(llm kind openai\)$"):
        OpenAICompatibleLLM("http://127.0.0.1:9/v1", 5)  # type: ignore[arg-type]


def test_a_wrong_call_is_pythons_own_error_and_an_unknown_argument_is_named_as_the_catalogue_names_it() -> None:
    """An argument given twice is a TypeError, as for any class, not a merged value that then passes the check."""
    with pytest.raises(TypeError, match="multiple values for argument 'base_url'"):
        OpenAICompatibleLLM("http://127.0.0.1:9/v1", "m", base_url="http://127.0.0.1:9/v1")  # type: ignore[misc]
    with pytest.raises(TypeError, match="too many positional arguments"):
        OpenAICompatibleLLM(*range(20))  # type: ignore[arg-type]
    with pytest.raises(EngineError, match=r"^llm\.colour: not an argument of llm kind openai \(known: api_key_env, [^;]*$"):
        OpenAICompatibleLLM("http://127.0.0.1:9/v1", "m", colour="red")  # type: ignore[call-arg]
    with pytest.raises(EngineError, match=r"^tts\.colour: not an argument of tts kind openai \(known: [^;]*$"):
        TTS_KINDS["openai"]("tts-1", colour="red")  # the model given by position is not "missing"


def test_build_stage_refuses_a_class_not_declared_as_the_kind() -> None:
    """A kinds map written by hand with an undecorated class would build it unchecked."""

    class Plain:
        def __init__(self, rate: int = 16000) -> None:
            self.rate = rate

    with pytest.raises(TypeError, match=r"Plain is not declared as the asr kind 'plain': decorate it with @stage_kind"):
        build_stage("asr", {"plain": Plain}, {"kind": "plain", "rate": "fast"})
    with pytest.raises(TypeError, match="not declared as the asr kind 'other'"):
        build_stage("asr", {"other": ASR_KINDS["faster-whisper"]}, {"kind": "other"})

    class Sub(ASR_KINDS["faster-whisper"]):  # type: ignore[misc, valid-type]
        pass

    with pytest.raises(TypeError, match="Sub is not declared as the asr kind 'faster-whisper'"):
        build_stage("asr", {"faster-whisper": Sub}, {"kind": "faster-whisper"})


@pytest.mark.parametrize(
    ("defaults", "wait"),
    [
        ({"llm": {**NOWHERE, "first_byte_timeout": 60}}, r"llm\.first_byte_timeout \(60 s\)"),
        ({"llm": {**NOWHERE, "read_timeout": 45}}, r"llm\.read_timeout \(45 s\)"),
        ({"llm": NOWHERE, "reply_timeout_s": 10}, r"llm\.first_byte_timeout \(15 s\)"),  # the stage's defaults count
        ({"llm": NOWHERE, "reply_timeout_s": 30}, r"llm\.read_timeout \(30 s\)"),  # an equal wait is too long too
        ({"llm": {**NOWHERE, "connect_timeout": 300}}, r"llm\.connect_timeout \(300 s\)"),
        ({"tts": {"kind": "openai", "model": "tts-1", "base_url": "http://127.0.0.1:9/v1", "timeout_s": 60}}, r"tts\.timeout_s \(60 s\)"),
    ],
)
def test_a_server_stage_wait_the_reply_timeout_would_cut_short_stops_the_catalogue(tmp_path: Path, defaults: dict, wait: str) -> None:
    """A wait as long as or longer than ``reply_timeout_s`` could never say why a turn failed: the reply is abandoned first."""
    with pytest.raises(CatalogError, match=rf"entry 'cascade'.*{wait} is not shorter than reply_timeout_s .*raise reply_timeout_s"):
        load_catalog(write(tmp_path, defaults))


def test_a_longer_reply_timeout_lets_the_longer_wait_be() -> None:
    engine = CascadeEngine(entry("cascade", llm={**NOWHERE, "first_byte_timeout": 60}, reply_timeout_s=120))
    assert engine.settings.waits_within_a_reply() == {"llm.connect_timeout": 5.0, "llm.first_byte_timeout": 60.0, "llm.read_timeout": 30.0}
    assert CascadeEngine(entry("cascade")).settings.waits_within_a_reply() == {}  # llama.cpp and Piper wait for nothing
    ollama = load_catalog().get("cascade-ollama").effective_settings
    assert ollama is not None and ollama["reply_timeout_s"] > ollama["llm"]["first_byte_timeout"]
