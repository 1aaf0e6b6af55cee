"""The WebRTC offer route refuses bad offers clearly, and they keep no session slot (:mod:`speechlm_demo.rtc_offer`)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastrtc.stream import Body

from speechlm_demo.benchmarks.rtc_peer import RATE, talk
from speechlm_demo.rtc_offer import offer_problem
from tests.engines_for_tests import silence, tone
from tests.support.app_process import running_app

# Session-level parts are fine, but the audio section has no a=ice-ufrag / a=ice-pwd: aiortc's
# setRemoteDescription raises after FastRTC has stored the peer (the audit's offer).
NO_ICE_SDP = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n"
VIDEO_ONLY_SDP = NO_ICE_SDP.replace("m=audio", "m=video")


@pytest.mark.parametrize(
    "body, problem",
    [
        ({"type": "nosuch", "sdp": NO_ICE_SDP}, "unsupported message type 'nosuch'"),
        ({"type": "answer", "sdp": NO_ICE_SDP}, "unsupported message type 'answer'"),
        ({"type": "offer"}, "the offer has no SDP"),
        ({"type": "offer", "sdp": "  "}, "the offer has no SDP"),
        ({"type": "offer", "sdp": "v=0\r\n" + "a=x\r\n" * 20_000}, "the SDP is too long"),
        ({"type": "offer", "sdp": VIDEO_ONLY_SDP}, "the SDP offers no audio"),
        ({"type": "ice-candidate"}, "an ice-candidate message needs a candidate"),
        ({"type": "offer", "sdp": NO_ICE_SDP}, None),  # parses: what aiortc refuses is handled after FastRTC's offer
        ({"type": "ice-candidate", "candidate": {"candidate": ""}}, None),
    ],
)
def test_offer_problems_are_named_before_fastrtc_sees_the_offer(body: dict, problem: str | None) -> None:
    found = offer_problem(Body(webrtc_id="x", **body))
    assert found == problem if problem is None else found.startswith(problem)


def test_garbage_sdp_is_refused_as_unparseable() -> None:
    assert offer_problem(Body(webrtc_id="x", type="offer", sdp="v=0\r\nm=audio notaport\r\n")) == "the SDP could not be parsed"


@pytest.mark.rtc
def test_bad_offers_keep_no_slot_and_a_good_peer_still_connects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import aioice.ice

    monkeypatch.setattr(aioice.ice, "get_host_addresses", lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else [])
    monkeypatch.setenv("SPEECHLM_MAX_SESSIONS", "2")
    log_path = tmp_path / "app.log"
    monkeypatch.setenv("SPEECHLM_TEST_APP_LOG", str(log_path))
    clip = np.concatenate([tone(0.8, RATE), silence(2.0, RATE)])
    with running_app("echo") as url:
        offer_url = url + "/rtc/webrtc/offer"
        for n in range(3):  # one more than the limit
            response = httpx.post(offer_url, json={"type": "offer", "webrtc_id": f"bad{n}", "sdp": NO_ICE_SDP}, timeout=20)
            assert response.status_code == 400, response.text
            meta = response.json()["meta"]
            assert meta["error"] == "bad_offer" and "ICE username fragment or password is missing" in meta["message"]
        response = httpx.post(offer_url, json={"type": "nosuch", "webrtc_id": "bad9", "sdp": NO_ICE_SDP}, timeout=20)
        assert response.status_code == 400 and "unsupported message type 'nosuch'" in response.json()["meta"]["message"]
        peer = asyncio.run(talk(offer_url, clip, listen_s=6.0, until_audible_after_s=1.0))
    loud = [unit for unit in peer.heard.units if unit.level > -45.0]
    assert loud, "the good peer heard no echo"
    log = log_path.read_text()
    assert "Traceback" not in log
    assert log.count("refused a WebRTC offer: ValueError: ICE username fragment or password is missing") == 3
