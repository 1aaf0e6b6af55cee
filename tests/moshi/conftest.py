"""Fixtures for the Moshi tests: a tiny random-weight checkpoint in a temp dir, the in-process engine loaded
from it, Kyutai's own ``moshi.server`` serving it on 127.0.0.1, and catalogue entries."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from speechlm_demo.catalog import EngineEntry
from tests.conftest import require

os.environ.setdefault("NO_TORCH_COMPILE", "1")  # torch.compile on CPU costs ~20 s per process and gains nothing
LAUNCHER = Path(__file__).with_name("launch_server.py")
REPO = Path(__file__).resolve().parents[2]


def need_moshi() -> None:
    """Skip (locally) or fail (CI) without the moshi package."""
    require(None if importlib.util.find_spec("moshi") else "missing moshi (pip install --no-deps moshi==0.2.13)")


def moshi_entry(engine_id: str, cls: str, input_rate: int = 24_000, **defaults: Any) -> EngineEntry:
    """A catalogue entry for a Moshi engine under test (CPU)."""
    return EngineEntry.model_validate(
        {
            "id": engine_id, "label": engine_id, "family": "speechlm", "duplex": "full", "class": cls,
            "sample_rates": {"input": input_rate, "output": 24_000}, "accelerators": ["cpu"], "licence": "CC-BY-4.0",
            "defaults": {"end_silence_ms": 400, **defaults},
        }
    )


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Tiny random Mimi + LM (17 streams) + SentencePiece tokenizer files; catalogue ``defaults`` keys."""
    need_moshi()
    import torch

    from tests.moshi.tiny import write_tiny_checkpoint

    torch.set_num_threads(1)  # another test run may share this machine
    return write_tiny_checkpoint(tmp_path_factory.mktemp("tiny-moshi"))


@pytest.fixture(scope="module")
def local_engine(tiny_checkpoint: dict[str, str]) -> Iterator[Any]:
    """The in-process engine, loaded (and warmed up) from the tiny checkpoint."""
    from speechlm_demo.engines.moshi.local import MoshiEngine

    engine = MoshiEngine(moshi_entry("moshi-tiny", "speechlm_demo.engines.moshi.local:MoshiEngine", 16_000,
                                     dtype="float32", top_k=50, **tiny_checkpoint), "cpu")
    engine.load()
    yield engine
    engine.close()


@dataclass
class ServerProcess:
    """A running ``moshi.server``."""

    url: str
    process: subprocess.Popen[bytes]


@pytest.fixture(scope="module")
def moshi_server(tiny_checkpoint: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Kyutai's ``moshi.server`` on 127.0.0.1 serving the tiny checkpoint (CPU), through the CUDA-free launcher."""
    port = free_port()
    log_file = tmp_path_factory.mktemp("moshi-server") / "server.log"
    args = ["--host", "127.0.0.1", "--port", str(port), "--static", "none", "--device", "cpu",
            "--moshi-weight", tiny_checkpoint["moshi_weights"], "--mimi-weight", tiny_checkpoint["mimi_weights"],
            "--tokenizer", tiny_checkpoint["tokenizer"], "--config-path", tiny_checkpoint["config"]]
    env = {**os.environ, "NO_TORCH_COMPILE": "1", "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    with log_file.open("w") as log:
        process = subprocess.Popen([sys.executable, str(LAUNCHER), *args], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.3)
            else:
                pytest.fail(f"moshi.server did not start:\n{log_file.read_text()[-3000:]}")
            yield ServerProcess(f"http://127.0.0.1:{port}", process)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
