"""GPU memory against ``min_vram_gb``: a device that cannot be queried, a card sold as N GB (which reports a
little less to torch), and the device an engine is placed on when the host has several."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from speechlm_demo.catalog import decide, load_catalog
from speechlm_demo.hardware import Device, HostInfo, host_from_torch

RTX_3090_BYTES = 25_438_126_080  # what torch reports for a "24 GB" RTX 3090: 23.69 GiB


def fake_torch(total_bytes: list[int], *, props_error: Exception | None = None) -> SimpleNamespace:
    def props(i: int) -> SimpleNamespace:
        if props_error is not None:
            raise props_error
        return SimpleNamespace(name="NVIDIA GeForce RTX 3090", total_memory=total_bytes[i])

    return SimpleNamespace(
        __version__="2.13.0",
        version=SimpleNamespace(cuda="12.8", hip=None),
        cuda=SimpleNamespace(
            is_available=lambda: True,
            device_count=lambda: len(total_bytes),
            get_device_properties=props,
            mem_get_info=lambda i: (total_bytes[i] // 2, total_bytes[i]),
        ),
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: False)),
    )


def test_a_device_that_cannot_be_queried_falls_back_to_cpu_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    torch = fake_torch([RTX_3090_BYTES], props_error=RuntimeError("CUDA error: invalid device ordinal"))
    with caplog.at_level(logging.WARNING, "speechlm_demo.hardware"):
        host = host_from_torch(torch)
    assert host.accelerator == "cpu" and host.devices == ()
    assert "invalid device ordinal" in caplog.text and "CPU-only" in caplog.text


def test_a_24_gb_card_is_offered_the_24_gb_engines() -> None:
    host = host_from_torch(fake_torch([RTX_3090_BYTES]))
    assert host.vram_gb == pytest.approx(23.7)
    decision = decide(load_catalog().get("moshi-bf16"), host, environ={})  # min_vram_gb: 24
    assert decision.available and decision.device == "cuda:0", decision.reason


def test_the_tolerance_is_small_and_a_refusal_stays_true() -> None:
    from speechlm_demo.hardware import VRAM_TOLERANCE, has_memory

    assert VRAM_TOLERANCE == 0.05 and has_memory(22.8, 24) and not has_memory(22.7, 24)
    host = HostInfo("cuda", (Device(0, "a card sold as 24 GB that reports too little", 22.7, 20.0),))
    decision = decide(load_catalog().get("moshi-bf16"), host, environ={})
    assert not decision.available
    assert decision.reason == "needs 24 GB of GPU memory, this GPU has 22.7 GB; does not run on CPU"


def _host_4090_and_a6000() -> HostInfo:
    """CUDA's default order is FASTEST_FIRST: an RTX 4090 (24 GB) is cuda:0 beside an RTX A6000 (48 GB)."""
    return HostInfo("cuda", (Device(0, "NVIDIA GeForce RTX 4090", 23.6, 23.0), Device(1, "NVIDIA RTX A6000", 47.5, 47.0)))


def test_an_engine_is_placed_on_the_first_device_with_enough_memory() -> None:
    catalog, host = load_catalog(), _host_4090_and_a6000()
    big = decide(catalog.get("qwen2.5-omni-7b"), host, environ={})  # min_vram_gb: 31: only the A6000
    assert (big.available, big.device, big.reason) == (True, "cuda:1", "available on cuda:1")
    small = decide(catalog.get("qwen2.5-omni-3b"), host, environ={})  # 18: the first device will do
    assert small.device == "cuda:0"


def test_a_host_of_small_gpus_names_its_largest() -> None:
    host = HostInfo("cuda", (Device(0, "NVIDIA T4", 14.6), Device(1, "NVIDIA L4", 22.0)))
    decision = decide(load_catalog().get("qwen2.5-omni-7b"), host, environ={})
    assert not decision.available and "needs 31 GB of GPU memory, the largest of its 2 GPUs has 22 GB" in decision.reason
