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


def test_the_voter_cookie_is_read_beside_another_apps_odd_cookies() -> None:
    """Cookies ignore the port: another app on the same host may set one with JSON, spaces or UTF-8 in it. The
    page must still read its own, not issue a new id at every visit (the quota of new ids would run out)."""
    ids = VoterIds(b"k" * 32)
    client = TestClient(app_with(ids))
    value = client.get("/").cookies[COOKIE]
    for odd in ('prefs={"theme": "dark"}', "note=two words", "name=zoë", "broken"):
        header = f"{odd}; {COOKIE}={value}; other=1"
        assert "set-cookie" not in client.get("/", headers={"cookie": header.encode()}).headers, odd


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


def test_issuing_counts_with_the_vote_limits_windows_and_forgets_idle_addresses() -> None:
    from speechlm_demo.votes.limits import SlidingWindows

    clock = Clock()
    ids = VoterIds(b"k" * 32, issue_limit=(2, 60.0), clock=clock)
    assert isinstance(ids._issued, SlidingWindows)  # one sliding-window implementation for every limit
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        assert ids.issue(address) is not None
    assert len(ids._issued) == 3
    clock.now += 61
    assert ids.issue("10.0.0.4") is not None and len(ids._issued) == 1  # the idle addresses are forgotten


def test_sliding_windows_count_take_back_and_purge() -> None:
    from speechlm_demo.votes.limits import SlidingWindows

    windows = SlidingWindows(10.0)
    for t in (0.0, 4.0, 8.0):
        windows.add("k", t)
    assert windows.count("k", 9.0) == (3, 1.0)
    windows.remove("k", 8.0)
    assert windows.count("k", 12.0) == (1, 2.0)  # 0.0 left the window, 8.0 was taken back
    windows.purge(30.0)
    assert len(windows) == 0 and windows.count("k", 30.0) == (0, 0.0)
