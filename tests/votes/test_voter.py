"""The server-issued voter id: a signed cookie set by the page, which a client cannot mint at will."""

from __future__ import annotations

from types import SimpleNamespace

from fastapi import FastAPI
from fastapi.testclient import TestClient

from speechlm_demo.votes.voter import COOKIE, VoterCookieMiddleware, VoterIds


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def app_with(ids: VoterIds) -> FastAPI:
    app = FastAPI()

    @app.get("/")
    def page() -> dict:
        return {"page": True}

    @app.get("/other")
    def other() -> dict:
        return {"other": True}

    app.add_middleware(VoterCookieMiddleware, ids=ids)
    return app


def test_the_page_issues_a_signed_http_only_cookie_once() -> None:
    ids = VoterIds(b"k" * 32)
    client = TestClient(app_with(ids))
    first = client.get("/")
    header = first.headers["set-cookie"]
    assert header.startswith(f"{COOKIE}=") and "HttpOnly" in header and "SameSite=Lax" in header and "Max-Age=" in header
    value = first.cookies[COOKIE]
    assert ids.verify(value)
    assert "set-cookie" not in client.get("/").headers  # the browser sends it back: nothing new
    assert "set-cookie" not in TestClient(app_with(ids)).get("/other").headers  # only the page issues ids
    secure = TestClient(app_with(ids)).get("/", headers={"x-forwarded-proto": "https"}).headers["set-cookie"]
    assert "Secure" in secure and "SameSite=None" in secure and "Partitioned" in secure


def test_a_client_cannot_mint_or_forge_a_voter_id() -> None:
    ids = VoterIds(b"k" * 32)
    value = ids.issue("10.0.0.1")
    assert value is not None
    voter_id, mac = value.split(".", 1)
    assert ids.verify(value) == voter_id
    for forged in (f"{voter_id}.{'A' * len(mac)}", f"someone-else.{mac}", voter_id, "", "a.b.c", None):
        assert ids.verify(forged) is None
    assert VoterIds(b"x" * 32).verify(value) is None  # another key (another deployment)
    request = SimpleNamespace(cookies={COOKIE: value}, client=SimpleNamespace(host="10.0.0.1"))
    voter = ids.voter(request)
    assert voter is not None and voter.id == voter_id and voter.address == "10.0.0.1"
    assert ids.voter(SimpleNamespace(cookies={}, client=None)) is None


def test_one_address_gets_only_so_many_new_ids_an_hour() -> None:
    clock = Clock()
    ids = VoterIds(b"k" * 32, issue_limit=(3, 3600.0), clock=clock)
    client = TestClient(app_with(ids))
    issued = []
    for _ in range(5):  # a script that discards its cookie each time
        client.cookies.clear()
        issued.append(client.get("/").cookies.get(COOKIE))
    assert sum(1 for value in issued if value) == 3
    assert ids.issue("testclient") is None and ids.issue("10.9.9.9") is not None  # other addresses are not affected
    clock.now += 3601
    assert ids.issue("testclient") is not None


def test_the_id_quota_comes_from_the_environment(monkeypatch) -> None:
    monkeypatch.setenv("SPEECHLM_VOTER_IDS_PER_HOUR", "2")
    ids = VoterIds(b"k" * 32)
    assert [ids.issue("10.1.1.1") is not None for _ in range(3)] == [True, True, False]
    monkeypatch.setenv("SPEECHLM_VOTER_IDS_PER_HOUR", "lots")
    assert VoterIds(b"k" * 32).issue_limit == (20, 3600.0)
