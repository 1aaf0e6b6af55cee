"""The page's microphones post their offers to Gradio's ``component_server`` (FastRTC's WebRTC component), not
to ``/rtc/webrtc/offer``: there too a bad offer is refused and keeps no session slot, and no request gets the
server's traceback back."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from fastrtc import WebRTC

from speechlm_demo.server import AppConfig, create_api, create_demo
from tests.test_rtc_offer import NO_ICE_SDP

MICROPHONES = ("talk-webrtc", "compare-webrtc", "blind-webrtc")


@pytest.fixture(scope="module")
def app() -> Iterator[tuple[TestClient, dict[str, WebRTC]]]:
    demo, registry = create_demo(AppConfig(engine="echo"))
    microphones = {block.elem_id: block for block in demo.blocks.values() if isinstance(block, WebRTC)}
    with TestClient(create_api(demo, registry, "echo"), raise_server_exceptions=False) as client:
        yield client, microphones


def post(client: TestClient, component: int, data: Any) -> Any:
    body = {"session_hash": "probe", "component_id": component, "fn_name": "offer", "data": data}
    return client.post("/gradio_api/component_server", json=body)


def test_every_microphone_is_guarded(app: tuple[TestClient, dict[str, WebRTC]]) -> None:
    _, microphones = app
    assert set(MICROPHONES) <= set(microphones), sorted(microphones)
    assert [elem_id for elem_id, block in microphones.items() if "offer" not in vars(block)] == []  # its own, guarded offer


@pytest.mark.parametrize("elem_id", MICROPHONES)
def test_bad_offers_through_the_component_keep_no_slot(app: tuple[TestClient, dict[str, WebRTC]], elem_id: str) -> None:
    client, microphones = app
    microphone = microphones[elem_id]
    for n in range(3):
        answer = post(client, microphone._id, {"type": "offer", "webrtc_id": f"{elem_id}-{n}", "sdp": NO_ICE_SDP})
        assert answer.status_code == 200, answer.text  # what FastRTC's page reads: it drops any other status's body
        assert answer.json()["status"] == "failed" and answer.json()["meta"]["error"] == "bad_offer" and "the offer was refused" in answer.json()["meta"]["message"]
    assert microphone.pcs == {} and microphone.handlers == {}


@pytest.mark.parametrize(
    "data, problem",
    [("x", "not a WebRTC message"), ({"type": "offer"}, "webrtc_id: Field required"),
     ({"type": "offer", "webrtc_id": "a"}, "the offer has no SDP"), ({"type": "bye", "webrtc_id": "a"}, "unsupported message type")],
)
def test_garbage_is_refused_with_a_reason(app: tuple[TestClient, dict[str, WebRTC]], data: Any, problem: str) -> None:
    client, microphones = app
    answer = post(client, microphones["talk-webrtc"]._id, data)
    assert answer.status_code == 200 and answer.json()["status"] == "failed", answer.text
    assert problem in answer.json()["meta"]["message"], answer.text


def test_a_failing_request_gets_no_traceback(app: tuple[TestClient, dict[str, WebRTC]]) -> None:
    client, _ = app
    answer = post(client, 999_999, {})
    assert answer.status_code == 500
    assert "Traceback" not in answer.text and ".py" not in answer.text, answer.text[:500]
