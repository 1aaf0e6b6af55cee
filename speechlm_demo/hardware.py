"""Probe the host: which accelerator (cuda | rocm | mps | cpu), device names, VRAM, torch build.

``probe()`` inspects the real machine; ``simulated_host("cuda:80")`` builds a pretend host so the
GPU-aware catalogue decisions can be shown and tested on a CPU-only machine.
"""

from __future__ import annotations

import importlib.util
import logging
import math
import os
import platform
from dataclasses import asdict, dataclass, field
from typing import Literal

log = logging.getLogger(__name__)

Accelerator = Literal["cuda", "rocm", "mps", "cpu"]
ACCELERATORS: tuple[str, ...] = ("cuda", "rocm", "mps", "cpu")
GIB = 1024**3
# A card sold as N GB reports a little less to torch (an RTX 3090 "24 GB": 23.69 GiB, the driver's reserve): a
# device counts as having ``min_vram_gb`` when it reports at least this share of it (24 GB: 22.8 GiB or more).
VRAM_TOLERANCE = 0.05


def has_memory(total_gb: float, min_gb: float) -> bool:
    """Whether a device reporting ``total_gb`` counts as a card of ``min_gb`` (within :data:`VRAM_TOLERANCE`)."""
    return total_gb >= min_gb * (1 - VRAM_TOLERANCE)


@dataclass(frozen=True)
class Device:
    """One accelerator device."""

    index: int
    name: str
    total_gb: float
    free_gb: float | None = None


@dataclass(frozen=True)
class HostInfo:
    """What this host can run engines on."""

    accelerator: Accelerator
    devices: tuple[Device, ...] = ()
    torch_version: str | None = None
    cuda_version: str | None = None
    hip_version: str | None = None
    cpu: str = field(default_factory=platform.machine)
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 1)
    simulated: bool = False

    @property
    def vram_gb(self) -> float:
        """Total memory of the largest device (0 on CPU hosts)."""
        return max((d.total_gb for d in self.devices), default=0.0)

    def device_with(self, min_gb: float) -> Device | None:
        """The first device (in index order) with ``min_gb`` of memory (see :func:`has_memory`), if any."""
        return next((d for d in sorted(self.devices, key=lambda d: d.index) if has_memory(d.total_gb, min_gb)), None)

    @property
    def free_vram_gb(self) -> float | None:
        """Free memory of the device with the most free memory, if known."""
        frees = [d.free_gb for d in self.devices if d.free_gb is not None]
        return max(frees) if frees else None

    def describe(self) -> str:
        """One line for logs and the UI."""
        if self.accelerator == "cpu":
            text = f"CPU only ({self.cpu}, {self.cpu_count} cores)"
        else:
            names = ", ".join(f"{d.name} {d.total_gb:.0f} GB" for d in self.devices) or "unknown device"
            text = f"{self.accelerator.upper()}: {names}"
        if self.torch_version:
            text += f"; torch {self.torch_version}"
        return text + (" (simulated)" if self.simulated else "")

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        data = asdict(self)
        data["vram_gb"] = self.vram_gb
        return data


def probe() -> HostInfo:
    """Inspect the real host. Never raises: a broken torch/driver falls back to CPU with a log line."""
    if importlib.util.find_spec("torch") is None:
        return HostInfo(accelerator="cpu")
    try:
        import torch
    except Exception as exc:  # noqa: BLE001 - a broken torch install must not stop the app
        log.warning("torch failed to import (%s); assuming a CPU-only host", exc)
        return HostInfo(accelerator="cpu")
    return host_from_torch(torch)


def host_from_torch(torch: object) -> HostInfo:
    """Build a :class:`HostInfo` from a torch module (real or a test double)."""
    version = getattr(torch, "__version__", None)
    cuda_version = getattr(torch.version, "cuda", None)  # type: ignore[attr-defined]
    hip_version = getattr(torch.version, "hip", None)  # type: ignore[attr-defined]
    devices: list[Device] = []
    try:
        gpu_available = bool(torch.cuda.is_available())  # type: ignore[attr-defined]
    except Exception as exc:  # noqa: BLE001
        log.warning("torch.cuda.is_available() failed: %s", exc)
        gpu_available = False
    if gpu_available:
        try:
            devices = _gpu_devices(torch)
        except Exception as exc:  # noqa: BLE001 - e.g. "invalid device ordinal", CUDA re-initialised after a fork
            log.warning("cannot query the GPU devices (%s); assuming a CPU-only host", exc)
            gpu_available = False
    accelerator: Accelerator
    if gpu_available:
        accelerator = "rocm" if hip_version else "cuda"
    elif _mps_available(torch):
        accelerator = "mps"
    else:
        accelerator = "cpu"
    return HostInfo(
        accelerator=accelerator,
        devices=tuple(devices),
        torch_version=version,
        cuda_version=cuda_version,
        hip_version=hip_version,
    )


def _gpu_devices(torch: object) -> list[Device]:
    """Every CUDA / ROCm device torch sees (raises what torch raises for a device it cannot query)."""
    devices = []
    for index in range(torch.cuda.device_count()):  # type: ignore[attr-defined]
        props = torch.cuda.get_device_properties(index)  # type: ignore[attr-defined]
        free_gb = None
        try:
            free, _total = torch.cuda.mem_get_info(index)  # type: ignore[attr-defined]
            free_gb = round(free / GIB, 1)
        except Exception as exc:  # noqa: BLE001
            log.info("could not read free memory of device %d: %s", index, exc)
        devices.append(Device(index, props.name, round(props.total_memory / GIB, 1), free_gb))
    return devices


def _mps_available(torch: object) -> bool:
    backends = getattr(torch, "backends", None)
    mps = getattr(backends, "mps", None)
    try:
        return bool(mps and mps.is_available())
    except Exception:  # noqa: BLE001
        return False


def simulated_host(spec: str) -> HostInfo:
    """Parse ``cpu``, ``mps``, ``cuda:GB`` or ``rocm:GB`` (optionally ``cuda:GB:NAME``) into a host.

    >>> simulated_host("cuda:80").vram_gb
    80.0
    """
    parts = spec.strip().split(":", 2)
    kind = parts[0].lower()
    if kind not in ACCELERATORS:
        raise ValueError(f"unknown host {spec!r}: use cpu, mps, cuda:GB or rocm:GB")
    if kind in ("cpu", "mps"):
        if len(parts) > 1:
            raise ValueError(f"host {spec!r}: {kind} takes no memory size")
        return HostInfo(accelerator=kind, simulated=True)  # type: ignore[arg-type]
    if len(parts) < 2 or not parts[1]:
        raise ValueError(f"host {spec!r}: give the GPU memory, e.g. {kind}:80")
    try:
        gb = float(parts[1])
    except ValueError:
        raise ValueError(f"host {spec!r}: GPU memory {parts[1]!r} is not a number") from None
    if not math.isfinite(gb) or gb <= 0:
        raise ValueError(f"host {spec!r}: GPU memory must be a finite number of GB above 0, e.g. {kind}:80")
    name = parts[2] if len(parts) > 2 else f"simulated {kind.upper()} GPU"
    return HostInfo(
        accelerator=kind,  # type: ignore[arg-type]
        devices=(Device(0, name, gb, gb),),
        hip_version="simulated" if kind == "rocm" else None,
        cuda_version="simulated" if kind == "cuda" else None,
        simulated=True,
    )
