"""Typed engine settings: validated when the catalogue loads, shown by ``engines --json``; the seam's protocol
module imports nothing of the turn layer."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from speechlm_demo.catalog import CatalogError, load_catalog
from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.echo import EchoEngine
from tests.engines_for_tests import entry

REPO = Path(__file__).resolve().parents[1]
ECHO = """
default_engine: echo
engines:
  - id: echo
    label: Echo
    family: diagnostic
    duplex: half
    class: speechlm_demo.engines.echo:EchoEngine
    accelerators: [cpu]
    licence: Apache-2.0
    defaults: {DEFAULTS}
"""


def write(tmp_path: Path, defaults: str) -> Path:
    path = tmp_path / "engines.yaml"
    path.write_text(ECHO.replace("{DEFAULTS}", defaults))
    return path


def test_a_misspelt_setting_is_refused_naming_file_entry_and_field(tmp_path: Path) -> None:
    path = write(tmp_path, "{end_silense_ms: 400}")
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert str(path) in message and "entry 'echo'" in message and "field defaults.end_silense_ms" in message


def test_a_mistyped_setting_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=r"entry 'echo', field defaults\.end_silence_ms: Input should be a valid number"):
        load_catalog(write(tmp_path, "{end_silence_ms: soon}"))
    with pytest.raises(CatalogError, match=r"field defaults\.endpointing"):
        load_catalog(write(tmp_path, "{endpointing: whenever}"))


def test_effective_settings_fill_in_the_class_defaults(tmp_path: Path) -> None:
    catalog = load_catalog(write(tmp_path, "{end_silence_ms: 700}"))
    settings = catalog.get("echo").effective_settings
    assert settings is not None
    assert settings["end_silence_ms"] == 700.0 and settings["pause_ms"] == 160.0 and settings["endpointing"] == "silence"


def test_an_engine_built_outside_the_catalogue_checks_its_settings_too() -> None:
    assert EchoEngine(entry("echo", end_silence_ms=321)).settings.end_silence_ms == 321.0
    with pytest.raises(EngineError, match=r"entry 'echo'.*defaults\.end_silense_ms"):
        EchoEngine(entry("echo", end_silense_ms=321))


def test_engines_json_shows_effective_settings(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "engines", "--json", "--host", "cpu", "--catalog", str(write(tmp_path, "{pause_ms: 64}"))],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    (echo,) = json.loads(out.stdout)
    assert echo["settings"]["pause_ms"] == 64.0 and echo["settings"]["end_silence_ms"] == 400.0


def test_the_typo_stops_the_cli_with_a_clear_message(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "engines", "--catalog", str(write(tmp_path, "{end_silense_ms: 400}"))],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )
    assert out.returncode == 2 and "end_silense_ms" in out.stderr and "Traceback" not in out.stderr


def test_the_protocol_module_imports_nothing_of_the_turn_layer() -> None:
    code = (
        "import sys, speechlm_demo.engines.base\n"
        "print(sorted(m for m in sys.modules if m.startswith(('speechlm_demo.turntaking', 'speechlm_demo.measure'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_a_server_wait_not_shorter_than_the_reply_timeout_is_refused() -> None:
    """Server rows wait up to ``first_byte_timeout_s`` for a reply to start and ``read_timeout_s`` between events;
    a reply is abandoned at ``reply_timeout_s`` (150 s by default for them), so a wait as long could never say why
    (one between events starts after the last event, often after the commit)."""
    from speechlm_demo.engines.speech_to_text.engine import SpeechToTextSettings

    settings = SpeechToTextSettings.model_validate({"model": "m"})
    assert settings.waits_within_a_reply() == {"connect_timeout_s": 5.0, "first_byte_timeout_s": 15.0, "read_timeout_s": 120.0}
    assert settings.reply_timeout_s == 150.0
    spoken_by_server = {"kind": "openai", "model": "tts-1", "base_url": "http://127.0.0.1:9/v1"}
    for given, wait in (
        ({"first_byte_timeout_s": 60, "reply_timeout_s": 30, "read_timeout_s": 20}, "first_byte_timeout_s (60 s)"),
        ({"reply_timeout_s": 30}, "read_timeout_s (120 s)"),
        ({"reply_timeout_s": 30, "read_timeout_s": 30}, "read_timeout_s (30 s)"),  # equal is too long as well
        ({"reply_timeout_s": 30, "read_timeout_s": 20, "tts": {**spoken_by_server, "timeout_s": 30}}, "tts.timeout_s (30 s)"),
    ):
        with pytest.raises(ValueError, match=rf"{re.escape(wait)} is not shorter than reply_timeout_s \(30 s\)"):
            SpeechToTextSettings.model_validate({"model": "m", **given})


def test_the_in_process_qwen2_audio_counts_its_speech_server_voice() -> None:
    from speechlm_demo.engines.qwen_local.settings import Qwen2AudioSettings

    voice = {"kind": "openai", "model": "tts-1", "base_url": "http://127.0.0.1:9/v1", "timeout_s": 90}
    with pytest.raises(ValueError, match=r"tts\.timeout_s \(90 s\) is not shorter than reply_timeout_s \(45 s\)"):
        Qwen2AudioSettings.model_validate({"tts": voice})
    assert Qwen2AudioSettings.model_validate({"tts": {**voice, "timeout_s": 20}}).waits_within_a_reply() == {"tts.timeout_s": 20.0}
