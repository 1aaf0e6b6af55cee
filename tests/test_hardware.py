"""Host probe: parsing torch's view of the machine, and simulated hosts."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from speechlm_demo.hardware import GIB, host_from_torch, probe, simulated_host


def fake_torch(*, cuda: bool, hip: str | None = None, devices: list[tuple[str, float, float]] = (), mps: bool = False):
    props = [SimpleNamespace(name=n, total_memory=int(t * GIB)) for n, t, _ in devices]
    frees = [(int(f * GIB), int(t * GIB)) for _, t, f in devices]
    return SimpleNamespace(
        __version__="2.13.0",
        version=SimpleNamespace(cuda=None if hip else "12.8", hip=hip),
        cuda=SimpleNamespace(
            is_available=lambda: cuda,
            device_count=lambda: len(devices),
            get_device_properties=lambda i: props[i],
            mem_get_info=lambda i: frees[i],
        ),
        backends=SimpleNamespace(mps=SimpleNamespace(is_available=lambda: mps)),
    )


def test_cuda_host_with_two_gpus() -> None:
    host = host_from_torch(fake_torch(cuda=True, devices=[("NVIDIA L4", 22.5, 20.0), ("NVIDIA H100", 79.6, 70.1)]))
    assert host.accelerator == "cuda"
    assert host.vram_gb == pytest.approx(79.6)
    assert host.free_vram_gb == pytest.approx(70.1)
    assert "NVIDIA H100" in host.describe()


def test_rocm_is_detected_from_hip_version() -> None:
    host = host_from_torch(fake_torch(cuda=True, hip="6.4.0", devices=[("AMD Instinct MI300X", 192.0, 190.0)]))
    assert host.accelerator == "rocm"
    assert host.hip_version == "6.4.0"
    assert host.vram_gb == 192.0


def test_mps_and_cpu() -> None:
    assert host_from_torch(fake_torch(cuda=False, mps=True)).accelerator == "mps"
    cpu = host_from_torch(fake_torch(cuda=False))
    assert cpu.accelerator == "cpu" and cpu.vram_gb == 0.0 and cpu.devices == ()


def test_broken_driver_falls_back_to_cpu() -> None:
    torch = fake_torch(cuda=True)

    def boom() -> bool:
        raise RuntimeError("driver too old")

    torch.cuda.is_available = boom
    assert host_from_torch(torch).accelerator == "cpu"


def test_free_memory_unknown_is_tolerated() -> None:
    torch = fake_torch(cuda=True, devices=[("GPU", 16.0, 10.0)])

    def no_info(index: int):
        raise RuntimeError("not supported")

    torch.cuda.mem_get_info = no_info
    host = host_from_torch(torch)
    assert host.vram_gb == 16.0 and host.free_vram_gb is None


def test_real_probe_on_this_machine_does_not_raise() -> None:
    host = probe()
    assert host.accelerator in ("cpu", "cuda", "rocm", "mps")
    assert host.to_dict()["accelerator"] == host.accelerator


@pytest.mark.parametrize(
    "spec, accel, vram",
    [("cpu", "cpu", 0.0), ("cuda:24", "cuda", 24.0), ("cuda:80:NVIDIA H100", "cuda", 80.0), ("rocm:192", "rocm", 192.0), ("mps", "mps", 0.0)],
)
def test_simulated_hosts(spec: str, accel: str, vram: float) -> None:
    host = simulated_host(spec)
    assert (host.accelerator, host.vram_gb, host.simulated) == (accel, vram, True)


@pytest.mark.parametrize("spec", ["tpu", "cuda", "cuda:lots", "cuda:-1", "cpu:8"])
def test_bad_simulated_hosts(spec: str) -> None:
    with pytest.raises(ValueError):
        simulated_host(spec)


@pytest.mark.parametrize("spec", ["cuda:nan", "cuda:inf", "rocm:-inf", "cuda:NaN:big", "cuda:0", "cuda:-5"])
def test_non_finite_or_non_positive_gpu_memory_is_refused(spec: str) -> None:
    with pytest.raises(ValueError, match="finite number of GB above 0"):
        simulated_host(spec)
