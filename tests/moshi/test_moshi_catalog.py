"""The proposed Moshi catalogue entries: offered by GPU memory, ROCm only when experimental, remote by URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from speechlm_demo import catalog
from speechlm_demo.catalog import decide, load_catalog
from speechlm_demo.hardware import simulated_host

ENTRIES = load_catalog(Path(__file__).with_name("catalog_entries.yaml"))


def offered_on(host: str, environ: dict[str, str] | None = None, experimental: bool = False) -> dict[str, catalog.Availability]:
    return {e.id: decide(e, simulated_host(host), allow_experimental=experimental, environ=environ or {}) for e in ENTRIES.engines}


@pytest.fixture(autouse=True)
def everything_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(catalog, "module_available", lambda module: True)


def test_cuda_entries_follow_gpu_memory() -> None:
    big, small = offered_on("cuda:80"), offered_on("cuda:16")
    assert big["moshi-bf16"].available and big["moshi-bf16"].device == "cuda:0" and big["moshi-int8"].available
    assert not small["moshi-bf16"].available and "needs 24 GB" in small["moshi-bf16"].reason
    assert small["moshi-int8"].available


def test_rocm_needs_the_experimental_switch_and_says_why() -> None:
    hidden, shown = offered_on("rocm:192"), offered_on("rocm:192", experimental=True)
    assert not hidden["moshi-bf16"].available and "experimental" in hidden["moshi-bf16"].reason
    assert shown["moshi-bf16"].available and "(experimental)" in shown["moshi-bf16"].reason


def test_cpu_gets_no_in_process_moshi_and_remote_needs_its_url() -> None:
    cpu = offered_on("cpu")
    assert not any(cpu[i].available for i in ("moshi-bf16", "moshika-bf16", "moshi-int8"))
    assert not cpu["moshi-remote"].available and "MOSHI_SERVER_URL" in cpu["moshi-remote"].reason
    for host in ("cpu", "cuda:8", "rocm:16", "mps"):
        assert offered_on(host, {"MOSHI_SERVER_URL": "ws://gpu:8998/api/chat"})["moshi-remote"].available
