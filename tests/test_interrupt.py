"""Ctrl-C while the app or a command starts (speechlm_demo/interrupt.py): one line, exit status 130, no
traceback, no native abort. The real entry points run in a subprocess of their own session; SIGINT goes to
that process group, as a terminal sends it, at a point of start-up the test can see: numpy's core library
mapped into the process (imports running: Gradio's) or a log line (an engine loading)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.catalog import load_catalog
from tests.cascade.conftest import need
from tests.engines_for_tests import silence, tone

pytestmark = [pytest.mark.slow, pytest.mark.skipif(sys.platform != "linux", reason="watches /proc/PID/maps")]

REPO = Path(__file__).resolve().parents[1]
INTERRUPTED = "interrupted (Ctrl-C); exiting"
IMPORTING = "_multiarray_umath"  # numpy's core library, mapped while Gradio (or a command's modules) is imported
LOADING = "server: host: "  # the default engine starts loading in a thread; the UI is built meanwhile
WHISPER_LOADED = "cascade.asr: Whisper "  # the cascade's first stage is in; llama.cpp loads next (fds 1, 2 at /dev/null)
DEADLINE_S = 180.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serving(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _interrupt(argv: list[str], stderr: Path, *, mapped: str = "", logged: str = "", port: int = 0) -> tuple[int, str]:
    """Start ``argv``, wait until ``mapped`` is in its memory map, ``logged`` in its stderr or it serves on
    ``port``, send SIGINT; its exit status and stderr."""
    env = {key: value for key, value in os.environ.items() if key not in ("SPEECHLM_ENGINE", "SPEECHLM_PRELOAD")}
    with stderr.open("w") as err:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, env=env, start_new_session=True)
    maps = Path(f"/proc/{proc.pid}/maps")
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not ((mapped and mapped in maps.read_text()) or (logged and logged in stderr.read_text())
                   or (port and _serving(port))):
            assert proc.poll() is None, f"exited ({proc.returncode}) before the point:\n{stderr.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never reached the point:\n{stderr.read_text()[-3000:]}"
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(DEADLINE_S)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stderr.read_text()


def _assert_clean(returncode: int, err: str) -> None:
    assert "Traceback" not in err and "terminate called" not in err, err[-3000:]
    assert returncode == 130, err[-3000:]
    assert err.count(INTERRUPTED) == 1, err[-3000:]


def _need_cascade() -> None:
    need(*load_catalog(None).get("cascade").requires.python)


@pytest.fixture
def prompts(tmp_path: Path) -> Path:
    folder = tmp_path / "prompts"
    folder.mkdir()
    sf.write(folder / "one.wav", np.concatenate([tone(0.8), silence(0.2)]), 16000)
    return folder


def test_ctrl_c_while_app_py_imports(tmp_path: Path) -> None:
    argv = [sys.executable, "app.py", "--engine", "echo", "--port", str(_free_port())]
    _assert_clean(*_interrupt(argv, tmp_path / "err.txt", mapped=IMPORTING))


@pytest.mark.parametrize(
    "entry, logged",
    [(["app.py"], LOADING), (["app.py"], WHISPER_LOADED), (["-m", "speechlm_demo", "run"], WHISPER_LOADED)],
    ids=["app.py-loading", "app.py-whisper-loaded", "run-whisper-loaded"],
)
def test_ctrl_c_while_the_default_cascade_loads(entry: list[str], logged: str, tmp_path: Path) -> None:
    """Native loaders (CTranslate2, then llama.cpp, which points fds 1 and 2 at /dev/null) run in a thread
    while the UI is built or the server already runs: no abort, no wait for the load, and the line comes out."""
    _need_cascade()
    argv = [sys.executable, *entry, "--engine", "cascade", "--port", str(_free_port())]
    _assert_clean(*_interrupt(argv, tmp_path / "err.txt", logged=logged))


def test_ctrl_c_once_serving_stops_the_server_releases_the_engines_then_exits_130(tmp_path: Path) -> None:
    port = _free_port()
    argv = [sys.executable, "app.py", "--engine", "echo", "--port", str(port)]
    returncode, err = _interrupt(argv, tmp_path / "err.txt", port=port)
    _assert_clean(returncode, err)
    released = err.find("registry: released the engines: echo")
    assert 0 <= released < err.find(INTERRUPTED), err[-3000:]


def test_ctrl_c_while_bench_imports(prompts: Path, tmp_path: Path) -> None:
    argv = [sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--prompts", str(prompts)]
    _assert_clean(*_interrupt(argv, tmp_path / "err.txt", mapped=IMPORTING))


def test_ctrl_c_while_bench_loads_the_cascade(prompts: Path, tmp_path: Path) -> None:
    _need_cascade()
    argv = [sys.executable, "-m", "speechlm_demo", "bench", "--engine", "cascade", "--prompts", str(prompts)]
    _assert_clean(*_interrupt(argv, tmp_path / "err.txt", logged=WHISPER_LOADED))


def _script(code: str, tmp_path: Path) -> list[str]:
    path = tmp_path / "entry.py"
    path.write_text(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n{code}")
    return [sys.executable, str(path)]


def test_ctrl_c_exits_even_when_flushing_a_stream_fails(tmp_path: Path) -> None:
    """A flush that raises (a stream busy in the very write the signal broke into raises "reentrant call"; here a
    logging handler) must not keep the process alive with Ctrl-C ignored."""
    code = """
import logging, time
from speechlm_demo.interrupt import exit_on_interrupt
exit_on_interrupt()
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
class Busy(logging.Handler):
    def emit(self, record): pass
    def flush(self): raise RuntimeError("reentrant call inside <_io.BufferedWriter name='<stderr>'>")
logging.getLogger().addHandler(Busy())
logging.getLogger("entry").info("ready")
while True:
    time.sleep(0.01)
"""
    returncode, err = _interrupt(_script(code, tmp_path), tmp_path / "err.txt", logged="entry: ready")
    _assert_clean(returncode, err)
    assert f"WARNING speechlm_demo.interrupt: {INTERRUPTED}" in err  # the app's log format


def _press_at(code: str, points: list[str], tmp_path: Path) -> tuple[int, str]:
    """Run ``code`` as an entry point; each time one of ``points`` (in order) is in its stderr, press Ctrl-C."""
    stderr = tmp_path / "err.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(_script(code, tmp_path), stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        for point in points:
            deadline = time.monotonic() + DEADLINE_S
            while point not in stderr.read_text():
                assert proc.poll() is None and time.monotonic() < deadline, stderr.read_text()[-3000:]
                time.sleep(0.005)
            os.killpg(proc.pid, signal.SIGINT)
        proc.wait(30)  # a hang is a failure
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, stderr.read_text()


COMMAND = """
import logging, time
from speechlm_demo.interrupt import exit_on_interrupt, unwind_on_interrupt
exit_on_interrupt()
logging.basicConfig(level=logging.INFO)
with unwind_on_interrupt():
    try:
        logging.getLogger("entry").info("ready")
        {body}
    finally:
        logging.getLogger("entry").info("cleaning up")
        time.sleep({clean_up_s})
        open({done!r}, "w").close()
"""


def test_a_second_ctrl_c_does_not_break_off_a_commands_clean_up(tmp_path: Path) -> None:
    done = tmp_path / "cleaned-up"
    code = COMMAND.format(body="time.sleep(60)", clean_up_s=1.0, done=str(done))
    returncode, err = _press_at(code, ["entry:ready", "entry:cleaning up"], tmp_path)
    _assert_clean(returncode, err)
    assert done.exists() and "press it again to exit at once" in err


def test_a_third_ctrl_c_exits_even_when_the_first_ones_exception_was_swallowed(tmp_path: Path) -> None:
    """A KeyboardInterrupt caught by a library (or lost in a finalizer) must not leave Ctrl-C dead."""
    done = tmp_path / "cleaned-up"
    body = "try:\n            time.sleep(60)\n        except KeyboardInterrupt:\n            logging.getLogger('entry').info('swallowed')\n        time.sleep(60)"
    code = COMMAND.format(body=body, clean_up_s=0, done=str(done))
    returncode, err = _press_at(code, ["entry:ready", "entry:swallowed", "press it again"], tmp_path)
    _assert_clean(returncode, err)
    assert not done.exists()  # the third Ctrl-C ended it at once


def test_ctrl_c_with_a_page_open_still_ends_the_app_at_once(tmp_path: Path) -> None:
    """Every open page holds Gradio's heartbeat stream; the graceful shutdown waited for it, so one browser tab
    kept Ctrl-C from ending the app. The stream is held here as a page holds it."""
    port = _free_port()
    argv = [sys.executable, "app.py", "--engine", "echo", "--port", str(port)]
    stderr = tmp_path / "err.txt"
    with stderr.open("w") as err:
        proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err, start_new_session=True)
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not _serving(port):
            assert proc.poll() is None and time.monotonic() < deadline, stderr.read_text()[-3000:]
            time.sleep(0.05)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as page:
            page.sendall(f"GET /gradio_api/heartbeat/test-page HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
            assert b"200 OK" in page.recv(4096)  # the stream is open
            os.killpg(proc.pid, signal.SIGINT)
            proc.wait(30)  # a hang is a failure, not a long wait: this is no timing test
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    err = stderr.read_text()
    _assert_clean(proc.returncode, err)
    assert "registry: released the engines: echo" in err, err[-3000:]
