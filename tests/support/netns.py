"""Run a command in a fresh network namespace that has only the loopback interface."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def loopback_namespace_problem() -> str | None:
    """Why a loopback-only namespace cannot be made here, or None if it can."""
    if shutil.which("unshare") is None:
        return "the `unshare` command (util-linux) is missing"
    if shutil.which("ip") is None:
        return "the `ip` command (iproute2) is missing"
    probe = subprocess.run(
        ["unshare", "-n", "ip", "link", "set", "lo", "up"], capture_output=True, text=True, check=False
    )
    if probe.returncode != 0:
        return f"`unshare -n` is not permitted here ({probe.stderr.strip() or probe.returncode}); run as root"
    return None


def run_python_in_loopback_namespace(args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` inside ``unshare -n`` with ``lo`` up, from the repo root; output captured."""
    command = "ip link set lo up && exec \"$0\" \"$@\""
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1")
    return subprocess.run(
        ["unshare", "-n", "sh", "-c", command, sys.executable, *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
