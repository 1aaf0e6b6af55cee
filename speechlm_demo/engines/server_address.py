"""Where a model server is: the settings base of every server client, and the one way its URL is read.

Every client of a server (research-model servers, vLLM / vLLM-Omni, OpenAI Realtime, moshi-server) takes its
URL from the environment variable named by ``url_env`` when that is set (and not blank), else from the
catalogue's ``url``; :func:`resolve_url` checks it and says which of the two to fix when it is missing or wrong.
"""

from __future__ import annotations

import os
from urllib.parse import SplitResult, urlsplit, urlunsplit

from pydantic import Field

from .base import EngineError, EngineSettings

HTTP_SCHEMES = {"http": "http", "https": "https"}
WEBSOCKET_SCHEMES = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}


def resolve_url(
    url: str | None, url_env: str | None, label: str, *, websocket: bool = False, example: str = "", setting: str = "url"
) -> str:
    """``$url_env`` (when set and not blank), else ``url``: an http(s) URL with a host, without a trailing ``/``.

    With ``websocket`` ws(s) URLs are accepted too and http(s) becomes ws(s). ``label`` names the engine (or
    stage) in the :class:`EngineError` raised for a missing or malformed URL, ``setting`` the catalogue key
    ``url`` came from; ``example`` shows a good URL.
    """
    from_env = (os.environ.get(url_env) or "").strip() if url_env else ""
    raw = from_env or (url or "").strip()
    hint = f" (e.g. {example})" if example else ""
    if not raw:
        where = f"set {url_env} (or {setting} in the catalogue)" if url_env else f"set {setting} in the catalogue"
        raise EngineError(f"{label}: no server URL; {where}{hint}")
    schemes = WEBSOCKET_SCHEMES if websocket else HTTP_SCHEMES
    source = f"${url_env}" if from_env else f"the catalogue's {setting}"
    parts = urlsplit(raw)
    scheme = schemes.get(parts.scheme.lower())
    if scheme is None or not _has_host(parts):
        kinds = "http(s) or ws(s)" if websocket else "http(s)"
        raise EngineError(f"{label}: {raw!r} ({source}) is not an {kinds} URL with a host{hint}")
    return urlunsplit((scheme, parts.netloc, parts.path.rstrip("/"), parts.query, ""))


def _has_host(parts: SplitResult) -> bool:
    """A host name, and a port that is a number in range if there is one."""
    try:
        parts.port  # noqa: B018 - raises for a port that is not a number or out of range
    except ValueError:
        return False
    return bool(parts.hostname)


class ServerAddress(EngineSettings):
    """Where a server is (catalogue ``defaults``): ``$url_env`` wins over ``url``."""

    url: str | None = Field(None, description="server URL; the environment variable named by url_env wins")
    url_env: str = Field("", description="environment variable holding the server URL")
    connect_timeout_s: float = Field(5.0, gt=0, description="longest wait for the connection to be accepted")

    def server_url(self, label: str, *, websocket: bool = False, example: str = "") -> str:
        """This server's URL, checked (see :func:`resolve_url`)."""
        return resolve_url(self.url, self.url_env, label, websocket=websocket, example=example)


class ServerConnection(ServerAddress):
    """A server that answers requests: where it is and how long to wait for its reply."""

    read_timeout_s: float = Field(30.0, gt=0, description="longest wait for the reply to start or go on")
