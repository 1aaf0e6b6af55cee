"""``python -m speechlm_demo bench-moshi``: Moshi's per-frame step time with random weights (nothing downloaded).

Builds the full Moshi architecture (7B LM + Mimi) or the tiny one with random weights and streams batches of
80 ms frames through Mimi encode -> LMGen.step -> Mimi decode, timing each frame (the device is synchronised
after every stage). The target for a live conversation is <= 40 ms per 80 ms frame at batch 1 (RTF <= 0.5).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Any

import numpy as np

from ..cli_types import non_negative_int, output_file, positive_int, positive_int_list
from ..engines.moshi import FRAME_S, FRAME_SIZE
from ..output_paths import write_json_report

log = logging.getLogger(__name__)

TARGET_MS = 40.0


def device_name(text: str) -> str:
    """``--device``: ``cpu``, ``mps``, ``cuda``/``rocm`` or ``cuda:N``/``rocm:N`` (checked without importing torch)."""
    kind, colon, index = text.strip().lower().partition(":")
    if kind in ("cpu", "mps") and not colon or kind in ("cuda", "rocm") and (not colon or index.isdigit()):
        return text.strip().lower()
    raise argparse.ArgumentTypeError(f"use cpu, mps, cuda, cuda:N, rocm or rocm:N, not {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The subcommand's flags (no torch import here: the CLI builds every parser at start-up)."""
    parser.add_argument("--random-weights", choices=("full", "tiny"), required=True, help="architecture to build")
    parser.add_argument("--batch", type=positive_int_list, default=[1], help="comma-separated batch sizes, e.g. 1,4,16")
    parser.add_argument("--frames", type=positive_int, default=50, help="timed 80 ms frames per batch size")
    parser.add_argument("--warmup", type=non_negative_int, default=4, help="untimed frames first (compilation, CUDA graphs)")
    parser.add_argument("--device", type=device_name, help="cuda | cpu | cuda:N | rocm[:N] | mps (default: cuda if available)")
    parser.add_argument("--dtype", default="bfloat16", help="LM weights: bfloat16 | float16 | float32")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=output_file, help="write the report here")


def run(size: str, batches: list[int], frames: int, device: str, dtype: str, warmup: int = 4, seed: int = 0) -> dict[str, Any]:
    """Build the models once, then time ``frames`` steps per batch size. Returns a JSON-friendly report."""
    import torch

    from ..engines.moshi.models import build_random, parameter_count, parse_dtype, torch_device

    torch.manual_seed(seed)
    where = torch_device(device)
    started = time.perf_counter()
    models = build_random(size, where, parse_dtype(dtype))  # type: ignore[arg-type]
    doc: dict[str, Any] = {
        "size": size, "device": str(where), "device_name": _device_name(where), "dtype": dtype,
        "torch": torch.__version__, "build_s": round(time.perf_counter() - started, 2),
        "params": {"lm": parameter_count(models.lm), "mimi": parameter_count(models.mimi)},
        "frame_ms": FRAME_S * 1000, "target_ms": TARGET_MS, "results": [],
    }
    log.info("built %s Moshi (%.2fB LM parameters) in %.1f s", size, doc["params"]["lm"] / 1e9, doc["build_s"])
    for batch in batches:
        try:
            doc["results"].append(_time_batch(models, batch, frames, warmup, where))
        except torch.OutOfMemoryError as exc:
            doc["results"].append({"batch": batch, "error": f"out of memory: {exc}"})
            if where.type == "cuda":
                torch.cuda.empty_cache()
        log.info("batch %d: %s", batch, doc["results"][-1])
    return doc


def _time_batch(models: Any, batch: int, frames: int, warmup: int, where: Any) -> dict[str, Any]:
    import torch

    from ..engines.moshi.models import inference

    def sync() -> None:
        if where.type == "cuda":
            torch.cuda.synchronize(where)

    gen = models.generator(temp=0.8, temp_text=0.7, top_k=250, top_k_text=25)
    stages: dict[str, list[float]] = {"encode": [], "lm": [], "decode": [], "step": []}
    pcm = (0.05 * torch.randn(batch, 1, FRAME_SIZE)).to(where)
    with inference(where), models.mimi.streaming(batch), gen.streaming(batch):
        for index in range(max(warmup, gen.max_delay + 1) + frames):
            sync()
            t0 = time.perf_counter()
            codes = models.mimi.encode(pcm)
            sync()
            t1 = time.perf_counter()
            tokens = gen.step(codes[:, :, :1])
            sync()
            t2 = time.perf_counter()
            if tokens is not None:
                models.mimi.decode(tokens[:, 1:])
                sync()
            t3 = time.perf_counter()
            if index >= max(warmup, gen.max_delay + 1):
                for name, seconds in (("encode", t1 - t0), ("lm", t2 - t1), ("decode", t3 - t2), ("step", t3 - t0)):
                    stages[name].append(seconds * 1000.0)
    step = np.asarray(stages["step"])
    return {
        "batch": batch, "frames": len(step),
        "step_ms": {"mean": _r(step.mean()), "p50": _r(np.percentile(step, 50)), "p95": _r(np.percentile(step, 95)), "max": _r(step.max())},
        "stage_ms_mean": {name: _r(np.mean(stages[name])) for name in ("encode", "lm", "decode")},
        "rtf": round(float(step.mean()) / (FRAME_S * 1000.0), 3),
        "real_time": bool(np.percentile(step, 95) <= FRAME_S * 1000.0),
        "meets_target": bool(step.mean() <= TARGET_MS),
    }


def _r(value: float) -> float:
    return round(float(value), 2)


def _device_name(where: Any) -> str:
    import platform

    import torch

    if where.type == "cuda":
        return torch.cuda.get_device_name(where)
    return platform.processor() or platform.machine()


def format_report(doc: dict[str, Any]) -> str:
    """A small table for the terminal."""
    lines = [
        (
            f"Moshi {doc['size']} (random {doc['dtype']} weights, LM {doc['params']['lm'] / 1e6:.1f}M params) "
            f"on {doc['device']} ({doc['device_name']}); built in {doc['build_s']} s; "
            f"target <= {doc['target_ms']:g} ms / 80 ms frame"
        ),
        f"{'batch':>5} {'mean ms':>8} {'p95 ms':>8} {'encode':>7} {'lm':>7} {'decode':>7} {'RTF':>6}  real time",
    ]
    for row in doc["results"]:
        if "error" in row:
            lines.append(f"{row['batch']:>5}  {row['error']}")
            continue
        stage = row["stage_ms_mean"]
        lines.append(
            f"{row['batch']:>5} {row['step_ms']['mean']:>8.1f} {row['step_ms']['p95']:>8.1f} {stage['encode']:>7.1f} "
            f"{stage['lm']:>7.1f} {stage['decode']:>7.1f} {row['rtf']:>6.2f}  {'yes' if row['real_time'] else 'no'}"
        )
    return "\n".join(lines)


def _check_device(torch: Any, device: str) -> None:
    """ValueError unless this torch build has ``device`` (a name :func:`device_name` accepted)."""
    kind, _, index = device.partition(":")
    if kind in ("cuda", "rocm"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ValueError(f"--device {device}, but this torch build sees no CUDA/ROCm GPU")
        if index and int(index) >= count:
            raise ValueError(f"--device {device}, but this torch build sees {count} GPU(s): use {kind}:0 to {kind}:{count - 1}")
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps, but this torch build sees no Apple GPU")


def run_cli(args: argparse.Namespace) -> int:
    """Entry point of the subcommand; returns the exit status."""
    try:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        _check_device(torch, device)
        doc = run(args.random_weights, args.batch, args.frames, device, args.dtype, args.warmup, args.seed)
    except ValueError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    sys.stdout.write(format_report(doc) + "\n")
    if args.json and not write_json_report(args.json, doc):
        return 2
    return 0 if all("error" not in row for row in doc["results"]) else 1
