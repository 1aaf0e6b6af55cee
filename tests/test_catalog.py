"""Catalogue validation and the data-driven "offered here, or why not" decision."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from speechlm_demo.catalog import CatalogError, decide, load_catalog, offered
from speechlm_demo.hardware import simulated_host
from speechlm_demo.settings_memo import code_fingerprint
from speechlm_demo.votes.pairs import pick_pair
from tests.test_engine_settings import ECHO, REPO

HOSTS = {"cpu": "cpu", "cuda24": "cuda:24", "cuda80": "cuda:80", "mi300": "rocm:192:AMD Instinct MI300X"}


def decisions(data_dir: Path, host: str, experimental: bool = False) -> dict[str, tuple[bool, str]]:
    catalog = load_catalog(data_dir / "catalog_hosts.yaml")
    return {a.entry.id: (a.available, a.reason) for a in offered(catalog, simulated_host(HOSTS[host]), allow_experimental=experimental)}


def test_default_catalogue_is_valid_and_its_default_runs_on_cpu() -> None:
    catalog = load_catalog()
    result = {a.entry.id: a for a in offered(catalog, simulated_host("cpu"))}
    assert result[catalog.default_engine].available


def test_cpu_host(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TEST_REMOTE_URL", raising=False)
    d = decisions(data_dir, "cpu")
    assert d["echo"] == (True, "available on cpu")
    assert d["big-cuda"][0] is False and "does not run on CPU" in d["big-cuda"][1]
    assert d["needs-server"] == (False, "set TEST_REMOTE_URL (point it at your server)")
    assert d["needs-package"][0] is False and "surely_not_installed_pkg_xyz" in d["needs-package"][1]


def test_cuda_24_gb(data_dir: Path) -> None:
    d = decisions(data_dir, "cuda24")
    assert d["echo"] == (True, "available on cuda:0")
    assert d["big-cuda"] == (True, "available on cuda:0")
    assert d["omni-rocm"][0] is False and "needs 40 GB of GPU memory, this GPU has 24 GB" in d["omni-rocm"][1]


def test_cuda_80_gb(data_dir: Path) -> None:
    d = decisions(data_dir, "cuda80")
    assert d["big-cuda"][0] and d["omni-rocm"][0]


def test_rocm_mi300_experimental_switch(data_dir: Path) -> None:
    d = decisions(data_dir, "mi300")
    assert d["omni-rocm"] == (True, "available on rocm:0")
    assert d["big-cuda"][0] is False and "SPEECHLM_EXPERIMENTAL=1" in d["big-cuda"][1]
    on = decisions(data_dir, "mi300", experimental=True)
    assert on["big-cuda"] == (True, "available on rocm:0 (experimental)")


def test_env_requirement_met(data_dir: Path) -> None:
    catalog = load_catalog(data_dir / "catalog_hosts.yaml")
    a = decide(catalog.get("needs-server"), simulated_host("cpu"), environ={"TEST_REMOTE_URL": "http://127.0.0.1:1"})
    assert a.available


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "engines.yaml"
    path.write_text(text)
    return path


GOOD_ENTRY = """
  - id: echo
    label: Echo
    family: diagnostic
    duplex: half
    class: speechlm_demo.engines.echo:EchoEngine
    accelerators: [cpu]
    licence: MIT
"""


@pytest.mark.parametrize(
    "text, expected",
    [
        ("default_engine: echo\nengines:" + GOOD_ENTRY.replace("family: diagnostic", "family: magic"), ["entry 'echo'", "field family"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY.replace("    licence: MIT\n", ""), ["entry 'echo'", "field licence", "Field required"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY.replace("[cpu]", "{cpu: maybe}"), ["entry 'echo'", "field accelerators.cpu"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY + GOOD_ENTRY, ["appears twice"]),
        ("default_engine: nope\nengines:" + GOOD_ENTRY, ["default_engine 'nope'"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY.replace("id: echo", "id: Echo Engine"), ["entry 'Echo Engine'", "field id"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY + "    colour: blue\n", ["entry 'echo'", "field colour", "Extra inputs"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY + "    identity_names: [Moshi, moshi]\n", ["entry 'echo'", "field identity_names", "listed twice"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY + "    identity_names: ['--']\n", ["entry 'echo'", "field identity_names", "must be a word"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY + "    identity_names: Moshi\n", ["entry 'echo'", "field identity_names"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY + "    weight: .inf\n", ["entry 'echo'", "field weight", "finite"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY + "    weight: .nan\n", ["entry 'echo'", "field weight", "finite"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY + "    weight: 1e308\n", ["entry 'echo'", "field weight", "1000"]),
        ("default_engine: echo\nengines:" + GOOD_ENTRY + "    min_vram_gb: .inf\n", ["entry 'echo'", "field min_vram_gb", "finite"]),
        ("engines: [", ["not valid YAML"]),
        ("- just a list", ["expected a mapping"]),
    ],
)
def test_malformed_catalogue_names_file_entry_and_field(tmp_path: Path, text: str, expected: list[str]) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(CatalogError) as info:
        load_catalog(path)
    message = str(info.value)
    assert str(path) in message
    for words in expected:
        assert words in message


def test_identity_names_of_the_default_catalogue() -> None:
    catalog = load_catalog()
    assert "Moshi" in catalog.get("moshi-bf16").identity_names and catalog.get("echo").identity_names == []
    assert all(entry.identity_names for entry in catalog.engines if entry.weight > 0)  # every blind engine can leak


def test_the_audio_alone_echo_rows_are_diagnostics_never_drawn_blind() -> None:
    catalog = load_catalog()
    for engine_id, endpointing, end_silence_ms in (("echo-silence700", "silence", 700.0), ("echo-smart-turn", "smart-turn", 1300.0)):
        entry = catalog.get(engine_id)
        assert (entry.family, entry.weight, entry.engine_class) == ("diagnostic", 0, catalog.get("echo").engine_class)
        settings = entry.effective_settings
        assert (settings["endpointing"], settings["end_silence_ms"]) == (endpointing, end_silence_ms)
    rng = random.Random(0)
    drawn = {e.id for _ in range(200) for e in pick_pair(catalog.engines, rng)}
    assert drawn and not drawn & {"echo", "echo-silence700", "echo-smart-turn"}


def test_a_catalogue_not_in_utf8_names_the_file_and_the_byte(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from speechlm_demo.cli import main

    path = tmp_path / "latin1.yaml"
    text = "# caf\u00e9 engines\ndefault_engine: echo\nengines:" + GOOD_ENTRY
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(CatalogError, match="not UTF-8") as info:
        load_catalog(path)
    assert str(path) in str(info.value) and "0xe9 at offset 5" in str(info.value)
    assert main(["engines", "--catalog", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {path}: not UTF-8") and "Traceback" not in err


def test_pick_pair_draws_from_weights_whose_sum_overflows() -> None:
    echo = load_catalog().get("echo")
    huge = [echo.model_copy(update={"id": name, "weight": 1e308}) for name in ("a", "b", "c")]  # built in code: not validated
    rng = random.Random(0)
    drawn = {tuple(sorted(e.id for e in pick_pair(huge, rng))) for _ in range(60)}
    assert drawn == {("a", "b"), ("a", "c"), ("b", "c")}


def test_missing_catalogue_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="cannot read"):
        load_catalog(tmp_path / "absent.yaml")


def test_program_requirement(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = load_catalog(data_dir / "catalog_hosts.yaml").get("echo")
    needs = entry.model_copy(update={"requires": entry.requires.model_copy(update={"commands": ["surely-not-a-program-xyz"], "hint": "apt install it"})})
    refused = decide(needs, simulated_host("cpu"))
    assert refused.available is False and refused.reason == "missing program(s): surely-not-a-program-xyz (apt install it)"
    present = needs.model_copy(update={"requires": needs.requires.model_copy(update={"commands": ["sh"]})})
    assert decide(present, simulated_host("cpu")).available


LOAD = """
import json, sys
from speechlm_demo.catalog import CatalogError, load_catalog
try:
    catalog = load_catalog(sys.argv[1] if len(sys.argv) > 1 else None)
except CatalogError as exc:
    print(json.dumps({"error": str(exc)}))
else:
    modules = {e.engine_class.partition(":")[0] for e in catalog.engines}
    print(json.dumps({"imported": sorted(modules & set(sys.modules)),
                      "settings": {e.id: e.effective_settings for e in catalog.engines}}))
"""


def load_in_a_fresh_process(cache: Path, *args: str) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", LOAD, *args], cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "SPEECHLM_CACHE": str(cache)},
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_a_checked_catalogue_loads_again_without_importing_engine_modules(tmp_path: Path) -> None:
    first = load_in_a_fresh_process(tmp_path)
    assert "speechlm_demo.engines.cascade.pipeline" in first["imported"]  # checked by importing the classes
    again = load_in_a_fresh_process(tmp_path)
    assert again["imported"] == [] and again["settings"] == first["settings"]
    assert again["settings"]["cascade"]["end_silence_ms"] > 0  # the typed check's effective settings


def test_a_wrong_setting_stops_a_warm_start_naming_file_entry_and_field(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    good.write_text(ECHO.replace("{DEFAULTS}", "{end_silence_ms: 400}"))
    bad.write_text(ECHO.replace("{DEFAULTS}", "{end_silence_ms: soon}"))
    assert load_in_a_fresh_process(tmp_path, str(good))["settings"]["echo"]["end_silence_ms"] == 400.0
    error = load_in_a_fresh_process(tmp_path, str(bad))["error"]
    assert str(bad) in error and "entry 'echo', field defaults.end_silence_ms" in error
    assert load_in_a_fresh_process(tmp_path, str(bad))["error"] == error  # a failure is never remembered


def test_any_change_to_a_source_file_is_another_code_version(tmp_path: Path) -> None:
    (tmp_path / "engine.py").write_text("class Settings: pass\n")
    before = code_fingerprint(tmp_path)
    (tmp_path / "engine.py").write_text("class Settings: x = 1\n")
    assert code_fingerprint(tmp_path) != before
