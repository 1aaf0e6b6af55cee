"""Who votes: a voter id that the server issues in a signed cookie, which a client cannot mint.

The page (``GET /``) sets the cookie ``speechlm_voter`` = ``<id>.<HMAC>`` (HttpOnly, a year) when the
browser has no valid one; the vote limits are keyed on that id and on the client address. One address may
be issued only so many new ids an hour, so discarding the cookie to look like a new voter runs out fast.
Behind a reverse proxy set uvicorn's ``FORWARDED_ALLOW_IPS`` so the address is the user's, not the proxy's.
The HMAC key is ``$SPEECHLM_ROUND_SECRET`` (set it, the same on every replica, so ids survive restarts
and work across replicas), else a random key for this process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.requests import cookie_parser

from ..env_settings import env_int
from .limits import SlidingWindows

log = logging.getLogger(__name__)

SECRET_ENV = "SPEECHLM_ROUND_SECRET"
IDS_PER_HOUR_ENV = "SPEECHLM_VOTER_IDS_PER_HOUR"
COOKIE = "speechlm_voter"
COOKIE_MAX_AGE_S = 365 * 24 * 3600
IDS_PER_HOUR = 20  # new voter ids per client address and hour, unless the environment says otherwise
_PROCESS_SECRET = secrets.token_bytes(32)


def address_issue_limit() -> tuple[int, float]:
    """New voter ids per client address and window (s): ``$SPEECHLM_VOTER_IDS_PER_HOUR`` (default 20) an hour."""
    return env_int(IDS_PER_HOUR_ENV, IDS_PER_HOUR, minimum=0), 3600.0


def signing_secret() -> bytes:
    """The key that signs voter ids and round ids."""
    configured = os.environ.get(SECRET_ENV)
    return configured.encode() if configured else _PROCESS_SECRET


@dataclass(frozen=True)
class Voter:
    """A verified voter id and the address its request came from."""

    id: str
    address: str


class VoterIds:
    """Issues and verifies voter cookies; caps how many new ids one address gets per window."""

    def __init__(
        self,
        secret: bytes | None = None,
        *,
        issue_limit: tuple[int, float] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._secret = secret or signing_secret()
        self.issue_limit = issue_limit or address_issue_limit()
        self.clock = clock
        self._issued = SlidingWindows(self.issue_limit[1])  # ids issued per address
        self._lock = threading.Lock()

    def _mac(self, voter_id: str) -> str:
        digest = hmac.new(self._secret, f"voter|{voter_id}".encode(), hashlib.sha256).digest()[:18]
        return base64.urlsafe_b64encode(digest).decode()

    def verify(self, cookie: str | None) -> str | None:
        """The voter id inside a cookie value, or None if it is missing or was not issued here."""
        voter_id, _, mac = str(cookie or "").partition(".")
        if not voter_id or not mac or len(voter_id) > 64:
            return None
        return voter_id if hmac.compare_digest(mac.encode("utf-8", "replace"), self._mac(voter_id).encode()) else None

    def issue(self, address: str) -> str | None:
        """A new cookie value for a browser at ``address``, or None once the address used up its quota."""
        now = self.clock()
        with self._lock:
            if self._issued.count(address, now)[0] >= self.issue_limit[0]:
                return None
            self._issued.add(address, now)
            self._issued.purge(now)
        voter_id = secrets.token_urlsafe(12)
        return f"{voter_id}.{self._mac(voter_id)}"

    def voter(self, request: Any) -> Voter | None:
        """The verified voter of a request (``gr.Request`` or Starlette's), or None."""
        cookies = getattr(request, "cookies", None) or {}
        voter_id = self.verify(cookies.get(COOKIE))
        return Voter(voter_id, client_address(request)) if voter_id else None


def client_address(request: Any) -> str:
    """The peer address of a request (what uvicorn reports: behind a proxy, run it with --proxy-headers)."""
    client = getattr(request, "client", None)
    return str(getattr(client, "host", None) or "unknown")


def _cookie_header(value: str, secure: bool) -> bytes:
    attributes = f"{COOKIE}={value}; Path=/; Max-Age={COOKIE_MAX_AGE_S}; HttpOnly"
    # Embedded in another site's page (e.g. a Space's iframe) only a Secure, SameSite=None cookie is sent back;
    # Partitioned keeps it to that embedding.
    attributes += "; Secure; SameSite=None; Partitioned" if secure else "; SameSite=Lax"
    return attributes.encode("latin-1")


class VoterCookieMiddleware:
    """ASGI middleware: the page (``GET /``) sets a voter cookie when the browser has no valid one."""

    def __init__(self, app: Any, ids: VoterIds) -> None:
        self.app = app
        self.ids = ids

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope.get("method") != "GET" or scope.get("path") not in ("/", ""):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        # Starlette's lenient parser, as the routes read it: SimpleCookie drops every cookie of a header in which
        # one (another app's on the same host) has a space or JSON in it, and a new voter id came at each visit.
        jar = cookie_parser(headers.get(b"cookie", b"").decode("latin-1"))
        if self.ids.verify(jar.get(COOKIE)):
            await self.app(scope, receive, send)
            return
        address = str((scope.get("client") or ("unknown",))[0])
        value = self.ids.issue(address)
        if value is None:
            log.warning("no new voter id for %s: it had %d in the last %.0f s", address, *self.ids.issue_limit)
            await self.app(scope, receive, send)
            return
        secure = scope.get("scheme") == "https" or headers.get(b"x-forwarded-proto", b"").split(b",")[0].strip() == b"https"

        async def send_with_cookie(message: dict) -> None:
            if message["type"] == "http.response.start":
                message = dict(message, headers=[*message.get("headers", []), (b"set-cookie", _cookie_header(value, secure))])
            await send(message)

        await self.app(scope, receive, send_with_cookie)
