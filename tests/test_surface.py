"""What the app serves besides its UI (issue 13, items 8 and 10): no uploads, only FastRTC's offer route,
and a voter cookie from the page."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from speechlm_demo.server import AppConfig, create_api, create_demo
from speechlm_demo.votes.voter import COOKIE


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    demo, registry = create_demo(AppConfig(engine="echo"))
    registry.get("echo")
    app = create_api(demo, registry, "echo")
    with TestClient(app) as test_client:
        test_client.app_routes = {getattr(route, "path", "") for route in app.routes}  # type: ignore[attr-defined]
        test_client.demo = demo  # type: ignore[attr-defined]
        yield test_client
    registry.close()


def test_uploads_are_refused_and_capped(client: TestClient) -> None:
    for size in (10, 2 << 20):
        response = client.post("/gradio_api/upload", files={"files": ("x.bin", b"x" * size)})
        assert response.status_code == 403, response.text
    assert client.post("/gradio_api/process_recording", files={"files": ("x.wav", b"RIFF")}).status_code == 403
    blocks = client.demo  # type: ignore[attr-defined]
    assert blocks.max_file_size is not None and blocks.max_file_size <= 1 << 20


def test_only_the_webrtc_offer_route_of_fastrtc_is_mounted(client: TestClient) -> None:
    rtc = sorted(path for path in client.app_routes if path.startswith("/rtc"))  # type: ignore[attr-defined]
    assert rtc == ["/rtc/webrtc/offer"]
    assert client.post("/rtc/webrtc/offer", json={"nonsense": True}).status_code == 422  # validated, no traceback
    assert client.post("/rtc/telephone/incoming").status_code in (404, 405)
    with pytest.raises(WebSocketDisconnect), client.websocket_connect("/rtc/websocket/offer"):
        pass


def test_the_page_sets_a_voter_cookie(client: TestClient) -> None:
    client.cookies.clear()
    page = client.get("/")
    assert page.status_code == 200 and COOKIE in page.cookies and "HttpOnly" in page.headers["set-cookie"]
    assert "set-cookie" not in client.get("/").headers
