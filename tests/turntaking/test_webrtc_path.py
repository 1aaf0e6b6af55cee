"""The WebRTC path's own delays: the server's receive buffer (``bench --via webrtc`` is in tests/test_webrtc.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiortc import jitterbuffer, rtcrtpreceiver
from aiortc.rtp import RtpPacket

from speechlm_demo import rtc_jitter

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
