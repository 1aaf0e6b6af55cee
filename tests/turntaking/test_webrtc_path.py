"""The WebRTC path's own delays: the server's receive buffer and ``bench --via webrtc``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from aiortc import jitterbuffer, rtcrtpreceiver
from aiortc.rtp import RtpPacket

from speechlm_demo import rtc_jitter
from tests.engines_for_tests import silence, tone

REPO = Path(__file__).resolve().parents[2]


def released_after(buffer: jitterbuffer.JitterBuffer) -> int:
    """How many packets must arrive before the first one comes out."""
    for number in range(1, 16):
        packet = RtpPacket(payload_type=111, sequence_number=number, timestamp=number * 960)
        packet._data = b"opus"  # what the receiver sets after depayloading (aiortc 1.16 rtcrtpreceiver.py)
        _, frame = buffer.add(packet)
        if frame is not None:
            return number
    return -1


def test_the_servers_audio_receivers_wait_for_one_later_frame_not_four(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtcrtpreceiver, "JitterBuffer", jitterbuffer.JitterBuffer)
    assert released_after(rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=4)) == 5  # aiortc's own: 80 ms late
    monkeypatch.delenv(rtc_jitter.ENV, raising=False)
    assert rtc_jitter.apply_receive_jitter_frames()
    assert released_after(rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=4)) == 2  # 20 ms
    with rtc_jitter.aiortc_default_buffer():  # the benchmark's client keeps aiortc's 4
        assert released_after(rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=4)) == 5
    video = rtcrtpreceiver.JitterBuffer(capacity=512, is_video=True)
    assert video.capacity == 512  # video untouched
    monkeypatch.setenv(rtc_jitter.ENV, "4")
    assert rtc_jitter.apply_receive_jitter_frames()  # applying again only changes the number
    assert released_after(rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=4)) == 5


def test_a_bad_setting_falls_back_to_one_frame(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rtc_jitter.ENV, "lots")
    assert rtc_jitter.receive_jitter_frames() == 1
    monkeypatch.setenv(rtc_jitter.ENV, "0")
    assert rtc_jitter.receive_jitter_frames() == 1


@pytest.mark.rtc
def test_bench_via_webrtc_reports_both_paths_and_where_the_time_went(tmp_path: Path) -> None:
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    for name, seconds in (("one", 0.8), ("two", 1.0)):
        sf.write(prompts / f"{name}.wav", np.concatenate([tone(seconds), silence(0.2)]), 16000)
        (prompts / f"{name}.json").write_text(json.dumps({"speech_end_s": seconds, "kind": "tone"}))
    out = tmp_path / "r.json"
    run = subprocess.run(
        [sys.executable, "-m", "speechlm_demo", "bench", "--engine", "echo", "--prompts", str(prompts), "--via", "webrtc",
         "--json", str(out), "--tail", "1.5"],
        cwd=REPO, capture_output=True, text=True, timeout=180,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    doc = json.loads(out.read_text())
    rows, summary = doc["rows"], doc["summary"]
    assert len(rows) == 2 and all(row["kind"] == "tone" for row in rows)
    for row in rows:
        # echo answers after its 400 ms silence rule in both paths; WebRTC adds the transport on top
        assert 350 < row["in_process_v2v_ms"] < row["webrtc_v2v_ms"] < row["in_process_v2v_ms"] + 1500
        assert 0 < row["inbound_ms"] < 500 and 0 < row["client_ms"] < 500
        assert row["outbound_ms"] == pytest.approx(row["handler_ms"] + row["fastrtc_ms"] + row["client_ms"], abs=2)
    assert summary["transport_share_ms"]["n"] == 2 and "transport_share_ms" in run.stdout
