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


def test_the_servers_audio_receivers_hand_each_packet_on_as_it_arrives(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtcrtpreceiver, "JitterBuffer", jitterbuffer.JitterBuffer)
    assert released_after(rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=4)) == 5  # aiortc's own: 80 ms late
    assert released_after(rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=0)) == 2  # even at 0 it waits for the next
    monkeypatch.delenv(rtc_jitter.ENV, raising=False)
    assert rtc_jitter.apply_receive_jitter_frames()
    assert released_after(rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=4)) == 1  # at once
    with rtc_jitter.aiortc_default_buffer():  # the benchmark's client keeps aiortc's 4
        assert released_after(rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=4)) == 5
    video = rtcrtpreceiver.JitterBuffer(capacity=512, is_video=True)
    assert video.capacity == 512  # video untouched
    monkeypatch.setenv(rtc_jitter.ENV, "1")
    assert rtc_jitter.apply_receive_jitter_frames()  # applying again only changes the number
    assert released_after(rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=4)) == 2


def test_a_packet_that_skips_ahead_goes_on_and_the_late_one_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rtcrtpreceiver, "JitterBuffer", jitterbuffer.JitterBuffer)
    monkeypatch.delenv(rtc_jitter.ENV, raising=False)
    assert rtc_jitter.apply_receive_jitter_frames()
    buffer = rtcrtpreceiver.JitterBuffer(capacity=16, prefetch=4)
    out = []
    for number in (65534, 65535, 1, 0, 2, 2):  # across the wrap; 0 comes late; 2 twice
        packet = RtpPacket(payload_type=111, sequence_number=number, timestamp=number * 960)
        packet._data = f"opus{number}".encode()
        _, frame = buffer.add(packet)
        out.append(None if frame is None else frame.data)
    assert out == [b"opus65534", b"opus65535", b"opus1", None, b"opus2", None]


def test_a_bad_setting_falls_back_to_handing_packets_on_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(rtc_jitter.ENV, "lots")
    assert rtc_jitter.receive_jitter_frames() == 0
    monkeypatch.setenv(rtc_jitter.ENV, "-3")
    assert rtc_jitter.receive_jitter_frames() == 0
    monkeypatch.setenv(rtc_jitter.ENV, "2")
    assert rtc_jitter.receive_jitter_frames() == 2
