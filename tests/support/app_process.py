"""Start the app (through :mod:`tests.support.launch_app`) as a subprocess and wait until it is ready."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """An unused TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def running_app(engine: str, *, catalog: str | None = None, ready_timeout: float = 90.0) -> Iterator[str]:
    """Yield the base URL of a running app whose default engine is loaded; stop it afterwards."""
    port = free_port()
    args = [sys.executable, "-m", "tests.support.launch_app", "--engine", engine, "--port", str(port)]
    if catalog:
        args += ["--catalog", catalog]
    log_path = Path(os.environ.get("SPEECHLM_TEST_APP_LOG", f"/tmp/speechlm-test-app-{port}.log"))
    with log_path.open("w") as log:
        proc = subprocess.Popen(args, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONPATH=str(REPO)))
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, proc, ready_timeout, log_path)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"app exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/api/health", timeout=2) as response:
                health = json.load(response)
            if health.get("ready"):
                return
            failed = [e for e, s in health.get("engines", {}).items() if s == "failed"]
            if failed:
                raise RuntimeError(f"engine(s) failed to load: {failed}\n{log_path.read_text()[-3000:]}")
        except OSError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"app not ready after {timeout:.0f} s:\n{log_path.read_text()[-3000:]}")
