"""Real WebRTC, in a network namespace that has only loopback: an aiortc peer and headless Chromium.

Both feed a spoken clip (espeak-ng) as the microphone to the running app and assert that non-silent
reply audio comes back; the voice-to-voice latency measured at the client is printed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import subprocess
import sys
import threading
import time
from itertools import pairwise
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechlm_demo.benchmarks.rtc_peer import Stage
from speechlm_demo.benchmarks.webrtc_stages import arrival_of
from tests.conftest import require
from tests.engines_for_tests import silence, tone
from tests.support.browser_run import last_json_line
from tests.support.netns import loopback_namespace_problem, run_python_in_loopback_namespace
from tests.support.speech import espeak_available, padded_clip

REPO = Path(__file__).resolve().parents[1]
PHRASE = "What is the capital of France?"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "talk-tab.png"


@pytest.fixture
def spoken_clip(tmp_path: Path) -> dict:
    require(None if espeak_available() else "espeak-ng is not installed (apt-get install espeak-ng)")
    return padded_clip(tmp_path / "turn.wav", PHRASE, before_s=1.0, after_s=14.0)


@pytest.mark.rtc
def test_aiortc_peer_gets_echo_back(spoken_clip: dict) -> None:
    require(loopback_namespace_problem())
    run = run_python_in_loopback_namespace(
        ["-m", "tests.support.rtc_check", "--wav", spoken_clip["path"], "--speech-end", str(spoken_clip["speech_end_s"]), "--engine", "echo"],
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = last_json_line(run.stdout)
    print(f"aiortc peer: voice-to-voice {result['voice_to_voice_ms']} ms (echo engine)")
    assert result["loud_frames"] >= 50, result  # at least a second of non-silent reply audio
    assert result["voice_to_voice_ms"] is not None and 0 < result["voice_to_voice_ms"] < 5000


@pytest.mark.rtc
def test_the_peer_hears_silence_while_the_session_is_idle(spoken_clip: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    require(loopback_namespace_problem())
    monkeypatch.setenv("SPEECHLM_RTC_IDLE_SILENCE", "1")
    run = run_python_in_loopback_namespace(
        ["-m", "tests.support.rtc_check", "--wav", spoken_clip["path"], "--speech-end", str(spoken_clip["speech_end_s"]), "--engine", "echo"],
        timeout=180,
    )
    assert run.returncode == 0, run.stderr[-4000:]
    result = last_json_line(run.stdout)
    # RTP from the start (the clip's lead-in and speech: seconds of 20 ms frames), the reply, RTP after it
    assert result["frames_before_reply"] >= 50 and result["frames_after_reply"] >= 25, result
    assert result["loud_frames"] >= 50 and 0 < result["voice_to_voice_ms"] < 5000, result


@pytest.mark.browser
@pytest.mark.parametrize("engine, expected_words", [("echo", ["echo of"]), ("cascade", ["capital", "Paris"])])
def test_chromium_talks_to_the_engine(spoken_clip: dict, engine: str, expected_words: list[str]) -> None:
    require(None if shutil.which("chromium") or os.path.exists("/usr/bin/chromium") else "Chromium is not installed (apt-get install chromium)")
    require(loopback_namespace_problem())
    args = ["-m", "tests.support.browser_check", "--wav", spoken_clip["path"], "--engine", engine]
    if engine == "cascade":  # the README's screenshot: the default engine after one turn
        SCREENSHOT.parent.mkdir(exist_ok=True)
        args += ["--screenshot", str(SCREENSHOT)]
    run = run_python_in_loopback_namespace(args, timeout=300)
    assert run.returncode == 0, run.stderr[-4000:]
    result = last_json_line(run.stdout)
    print(f"Chromium page: voice-to-voice {result['voice_to_voice_ms']} ms ({engine}), jitter buffer at the reply {result['reply_jitter_buffer_ms']} ms, status: {result['status']}")
    assert result["probe_errors"] == []
    assert result["reply_onset_ms"] is not None, result
    assert result["reply_loud_ms"] >= 300 and result["remote_max_dbfs"] > -30, result
    assert "voice-to-voice" in result["status"]
    transcript = result["transcript"].lower()
    assert any(word.lower() in transcript for word in expected_words), result["transcript"]
    assert result["has_timeline_plot"]


def tone_prompts(folder: Path) -> Path:
    """Two tone prompts (16 kHz) with sidecars: echo answers each after its 400 ms silence rule."""
    folder.mkdir()
    for name, seconds in (("one", 0.8), ("two", 1.0)):
        sf.write(folder / f"{name}.wav", np.concatenate([tone(seconds), silence(0.2)]), 16000)
        (folder / f"{name}.json").write_text(json.dumps({"speech_end_s": seconds, "kind": "tone"}))
    return folder


@pytest.mark.rtc
def test_bench_via_webrtc_splits_the_total_into_non_negative_shares(tmp_path: Path) -> None:
    out, csv, png = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.png"
    run = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--prompts", str(tone_prompts(tmp_path / "p")),
         "--via", "webrtc", "--json", str(out), "--csv", str(csv), "--plot", str(png), "--tail", "1.5"],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads(out.read_text())
    turns, rows, summary = doc["turns"], doc["webrtc"]["rows"], doc["webrtc"]["summary"]
    assert [t["status"] for t in turns] == ["ok", "ok"] and doc["summary"]["premature_by_kind"] == {"tone": {"prompts_cut": 0, "total": 2}}
    for turn, row in zip(turns, rows, strict=True):
        assert row["in_process_v2v_ms"] == turn["metrics"]["voice_to_voice_ref_ms"]
        # echo answers after its 400 ms silence rule in both paths; WebRTC adds the transport on top
        assert 350 < row["in_process_v2v_ms"] < row["webrtc_v2v_ms"] < row["in_process_v2v_ms"] + 1500
        shares = [row[name] for name in ("inbound_ms", "server_ms", "handler_ms", "fastrtc_ms", "client_ms")]
        assert all(share >= 0 for share in shares), row
        assert sum(shares) == pytest.approx(row["webrtc_v2v_ms"], abs=3)
        assert row["server_ms"] > 350 and row["client_ms"] > 20  # the silence rule; the peer's receive buffer
        assert abs(row["observer_gap_ms"]) < 3  # "released" is the observer's first_audio_out
        # the engine's own stages on both paths: echo's turn detection is its silence rule on each
        assert row["in_process_turn_detect_ms"] == turn["metrics"]["turn_detect_ms"]
        assert 350 < row["webrtc_turn_detect_ms"] < 1000
    assert all(summary["transport_share_ms"]["by_order"].values())  # one repeat: a prompt led by each path
    assert summary["transport_share_ms"]["n"] == 2 and "transport_share_ms" in run.stdout and "premature cuts" in run.stdout
    header = csv.read_text().splitlines()[0].split(",")
    assert {"webrtc_v2v_ms", "webrtc_client_ms", "webrtc_turn_detect_ms", "voice_to_voice_ref_ms", "turn_detect_ms"} <= set(header)
    assert not [name for name in header if "in_process" in name]  # the turn's own columns, not renamed copies
    assert csv.read_text().count("\n") == 3 and png.stat().st_size > 1000


def test_bench_via_webrtc_closes_everything_when_the_peer_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from fastrtc.tracks import AudioCallback

    from speechlm_demo import cli
    from speechlm_demo.benchmarks import webrtc
    from speechlm_demo.engines.registry import EngineRegistry

    closed: list[EngineRegistry] = []
    real_close = EngineRegistry.close

    def close(self: EngineRegistry) -> None:
        closed.append(self)
        real_close(self)

    def refused(*args: object, **kwargs: object) -> None:
        raise ConnectionRefusedError("the peer could not connect")

    monkeypatch.setattr(EngineRegistry, "close", close)
    monkeypatch.setattr(webrtc.PeerProcess, "talk", refused)
    recv = AudioCallback.recv
    status = cli.main(["bench", "--engine", "echo", "--prompts", str(tone_prompts(tmp_path / "p")), "--via", "webrtc", "--tail", "1.0"])
    assert status == 2 and "error: the peer could not connect" in capsys.readouterr().err
    assert len(closed) == 1
    assert AudioCallback.recv is recv  # FastRTC's track is itself again
    assert not [t for t in threading.enumerate() if t.name == "bench-rtc-server"]  # the server stopped
    assert not multiprocessing.active_children()  # and the peer's process


def test_a_hung_peer_process_is_killed_when_the_run_fails() -> None:
    from speechlm_demo.benchmarks.rtc_peer import PeerProcess

    ended = threading.Event()

    def fail_while_the_peer_hangs() -> None:
        try:
            with PeerProcess() as peer:
                peer._pool.apply_async(time.sleep, (1e6,))  # a peer that never finishes
                time.sleep(0.5)
                raise RuntimeError("the run failed")
        except RuntimeError:
            ended.set()

    runner = threading.Thread(target=fail_while_the_peer_hangs, daemon=True)
    runner.start()
    assert ended.wait(30)  # the error surfaces instead of waiting for the peer forever
    assert not multiprocessing.active_children()


def test_a_stage_is_timed_for_the_same_sample_on_its_playback_clock() -> None:
    # three 100 ms pieces (16 kHz), two handed over at once, the third 50 ms late: they play back to back
    stage = Stage()
    loud_after_40ms = np.concatenate([np.zeros(640, np.float32), np.full(960, 0.5, np.float32)])
    for t, pcm in ((10.0, np.zeros(1600, np.float32)), (10.0, loud_after_40ms), (10.25, np.full(1600, 0.5, np.float32))):
        stage.add(t, pcm, 16_000)
    assert stage.first_audible(after=9.0) == pytest.approx((10.14, 0.14))
    assert stage.playback_instant(0.14) == pytest.approx(10.14)
    assert stage.playback_instant(0.2) == pytest.approx(10.25)  # late: it plays when it arrives
    assert stage.first_audible(after=10.2) == pytest.approx((10.25, 0.2))
    assert stage.playback_instant(0.5) is None


def test_the_inbound_stamp_finds_the_sent_sample_in_the_received_stream() -> None:
    rng = np.random.default_rng(0)
    clip = rng.normal(0, 0.1, 48_000).astype(np.float32)
    delay = 312  # what the codec adds; the first received frame was lost on the way
    received = np.concatenate([np.zeros(delay, np.float32), clip])[960:]
    frames = [(100.0 + i * 0.02, received[i * 960 : (i + 1) * 960]) for i in range(len(received) // 960)]
    # sample 20000 of the clip is sample 20312 of what was sent, 19352 of what arrived: frame 20
    assert arrival_of(frames, clip, 20_000) == pytest.approx(100.0 + 20 * 0.02)


def test_the_transport_share_weighs_both_orders_the_same() -> None:
    from speechlm_demo.benchmarks.webrtc import format_shares, summarise_shares

    # the path run second finds warm caches (50 ms quicker): WebRTC costs 100 ms in truth
    rows = [{"prompt": f"q{i}.wav", "repeat": 0, "webrtc_first": i % 2 == 1, "in_process_v2v_ms": 500.0 - (i % 2) * 50,
             "webrtc_v2v_ms": 600.0 - (1 - i % 2) * 50} for i in range(5)]
    summary = summarise_shares(rows)
    assert summary["transport_share_ms"] == {"p50": 100.0, "n": 5, "by_order": {"in_process_first": 50.0, "webrtc_first": 150.0}}
    assert "transport_share_ms" in format_shares({"summary": summary, "rows": rows})


def test_the_two_voice_to_voice_medians_are_over_the_runs_answered_on_both_paths() -> None:
    from speechlm_demo.benchmarks.webrtc import summarise_shares

    rows = [{"prompt": "q0.wav", "in_process_v2v_ms": 500.0, "webrtc_v2v_ms": 600.0},
            {"prompt": "q1.wav", "in_process_v2v_ms": 520.0, "webrtc_v2v_ms": 640.0},
            {"prompt": "q2.wav", "in_process_v2v_ms": None, "webrtc_v2v_ms": 3000.0},  # failed in process: a slow fallback
            {"prompt": "q3.wav", "in_process_v2v_ms": 90.0, "webrtc_v2v_ms": None}]  # not heard over WebRTC
    summary = summarise_shares(rows)
    assert summary["in_process_v2v_ms"] == {"p50": 510.0, "n": 2}
    assert summary["webrtc_v2v_ms"] == {"p50": 620.0, "n": 2}
    assert summary["transport_share_ms"]["p50"] == 110.0


@pytest.mark.parametrize("count", [1, 2, 3, 4, 5, 10, 11])
@pytest.mark.parametrize("flip", [False, True])
def test_each_prompt_runs_once_on_each_path_never_twice_in_a_row_half_led_by_each(count: int, flip: bool) -> None:
    from speechlm_demo.benchmarks.webrtc import schedule

    steps = schedule(count, flip)
    assert sorted(steps) == sorted((path, i) for i in range(count) for path in ("process", "webrtc"))
    firsts = {}
    for i in range(count):
        first, second = (k for k, step in enumerate(steps) if step[1] == i)
        assert second <= first + 3  # at most two runs between a prompt's two runs
        firsts[i] = steps[first][0]
    if count > 1:
        assert all(a[1] != b[1] for a, b in pairwise(steps))  # no prompt twice in a row
    led_by_webrtc = sum(path == "webrtc" for path in firsts.values())
    assert abs(2 * led_by_webrtc - count) <= 1  # one repeat is balanced (within one prompt)
    assert firsts[0] == ("webrtc" if flip else "process")
