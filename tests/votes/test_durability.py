"""A vote is acknowledged only once it is durable (issue 13, item 3): a read-only or deleted data folder
never yields "vote recorded" for a vote that is lost."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.conftest import require

REPO = Path(__file__).resolve().parents[2]


def unprivileged() -> list[str]:
    """A command prefix that drops root (file modes do not stop root), or [] when not root."""
    if os.geteuid() != 0:
        return []
    require(None if shutil.which("setpriv") else "setpriv (util-linux) is needed to run the probe without root")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_read_only_and_deleted_data_folders_never_lose_an_acknowledged_vote() -> None:
    prefix = unprivileged()
    folder = Path(tempfile.mkdtemp(prefix="speechlm-durability-"))
    folder.chmod(0o777)
    try:
        env = dict(os.environ, PYTHONPATH=str(REPO), HOME=str(folder))
        env.pop("SPEECHLM_DB_URL", None)
        run = subprocess.run(
            [*prefix, sys.executable, "-m", "tests.votes.durability_probe", str(folder)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
        )
        assert run.returncode == 0, run.stderr[-3000:]
        result = json.loads(run.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert result["read_only"].startswith("NOT SAVED"), result  # the user is told; nothing claims it is safe
    assert result["pending_in_memory"] == 0, result  # and nothing is held in memory pretending to be kept
    assert result["writable_again"] == "Thanks, vote recorded." and result["stored_after_writable"] == 1, result
    # the folder deleted while running: the store notices before writing and makes it again
    assert result["after_delete"] == "Thanks, vote recorded." and result["stored_after_delete"] == 1, result
