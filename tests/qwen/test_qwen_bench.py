"""``bench --engine qwen2.5-omni-vllm`` against the fake server run as a script, exactly as a user would."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.engines_for_tests import silence, tone
from tests.qwen.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_script() -> Iterator[str]:
    """``python -m tests.qwen.fake_vllm_omni --port N`` in a subprocess; its base URL."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.qwen.fake_vllm_omni", "--port", str(port)], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"fake server did not start: {proc.stderr.read().decode() if proc.stderr else ''}") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.mark.slow
def test_bench_qwen_omni_against_the_fake_server(fake_script: str, tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for name, seconds in (("one", 0.8), ("two", 1.2)):
        sf.write(prompts / f"{name}.wav", np.concatenate([silence(0.2), tone(seconds), silence(0.2)]), 16000)
        (prompts / f"{name}.json").write_text(json.dumps({"speech_end_s": 0.2 + seconds}))
    out = tmp_path / "r.json"
    env = {**os.environ, "VLLM_OMNI_URL": fake_script}
    run = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "bench", "--engine", "qwen2.5-omni-vllm", "--prompts", str(prompts), "--json", str(out), "--tail", "2.5"],
        cwd=REPO, env=env, check=False, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["summary"]["turns"] == {"ok": 2, "total": 2}
    for turn in doc["turns"]:
        marks = turn["marks_ms"]
        assert turn["status"] == "ok"
        assert marks["request_sent"] <= marks["first_text"] < marks["first_audio_in"] <= marks["first_audio_out"]
        assert turn["metrics"]["server_first_audio_ms"] > turn["metrics"]["server_first_text_ms"]
    assert "server_first_text_ms" in run.stdout and "server_first_audio_ms" in run.stdout
