"""Issue 13, item 1 over HTTP: a scripted Gradio client (its own invented session ids) against the running
app. Without the voter cookie the page issued, or with a forged one, the Blind A/B endpoints refuse; the
cookie from the page is what identifies a voter through Gradio's queue."""

from __future__ import annotations

import urllib.request
from pathlib import Path

import pytest
from gradio_client import Client

from speechlm_demo.votes.voter import COOKIE
from tests.support.app_process import running_app

CATALOG = Path(__file__).with_name("data") / "blind_catalog.yaml"
VOTE = "/_Vote"


def page_cookie(url: str) -> str:
    """What a browser gets from loading the page: the ``speechlm_voter`` cookie value."""
    with urllib.request.urlopen(url + "/") as response:
        header = response.headers["set-cookie"]
    assert header and header.startswith(f"{COOKIE}="), header
    return header.split(";")[0].split("=", 1)[1]


@pytest.mark.slow
def test_a_scripted_client_needs_the_cookie_the_page_issued(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECHLM_DATA_DIR", str(tmp_path / "data"))
    with running_app("parrot-left", catalog=str(CATALOG)) as url:
        for invented in range(3):  # each Client invents its own session id; no cookie
            status = Client(url, verbose=False).predict(api_name=VOTE)[0]
            assert "no voter id" in status, (invented, status)
            assert "no voter id" in Client(url, verbose=False).predict(api_name="/session_round")[1]
        cookie = page_cookie(url)
        voter_id, _, mac = cookie.partition(".")
        for forged in (f"{voter_id}x.{mac}", f"{voter_id}.{'A' * len(mac)}", "made-up"):
            status = Client(url, verbose=False, headers={"Cookie": f"{COOKIE}={forged}"}).predict(api_name=VOTE)[0]
            assert "no voter id" in status, (forged, status)
        genuine = Client(url, verbose=False, headers={"Cookie": f"{COOKIE}={cookie}"})
        assert "there is no round" in genuine.predict(api_name=VOTE)[0]  # recognised: it only lacks a round
