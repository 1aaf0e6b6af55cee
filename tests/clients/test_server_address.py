"""One way to read a server's URL (``$url_env`` over ``url``, checked) for every server client, and the shared
streaming helper's treatment of replies that are not the server's format."""

from __future__ import annotations

import pytest
from aiohttp import web

from speechlm_demo.catalog import load_catalog
from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.registry import engine_class
from speechlm_demo.engines.server_address import ServerAddress, resolve_url
from speechlm_demo.engines.server_client import ProtocolError, ServerFailure, ServerSettings, post_stream

from .serving import FakeHTTPServer

# one catalogue entry of every engine class that talks to a server, with the variable its URL comes from
SERVER_ENGINES = {
    "mini-omni": "MINI_OMNI_URL",
    "llama-omni2": "LLAMA_OMNI2_URL",
    "glm-4-voice": "GLM4_VOICE_URL",
    "qwen2.5-omni-vllm": "VLLM_OMNI_URL",
    "ultravox-vllm": "VLLM_URL",
    "gpt-realtime": "OPENAI_REALTIME_URL",
    "gpt-realtime-vad": "OPENAI_REALTIME_URL",
    "moshi-remote": "MOSHI_SERVER_URL",
}


def test_the_environment_wins_and_blank_is_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("X_URL", " http://gpu-box:8000/v1/ ")
    assert resolve_url("http://other:1", "X_URL", "engine") == "http://gpu-box:8000/v1"
    monkeypatch.setenv("X_URL", "   ")
    assert resolve_url("http://other:1", "X_URL", "engine") == "http://other:1"
    assert resolve_url("https://gpu-box/realtime?model=m", "", "engine", websocket=True) == "wss://gpu-box/realtime?model=m"
    assert resolve_url("ws://gpu-box:8998", None, "engine", websocket=True) == "ws://gpu-box:8998"


def test_missing_and_malformed_urls_say_what_to_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("X_URL", raising=False)
    with pytest.raises(EngineError, match=r"engine: no server URL; set X_URL \(or url in the catalogue\) \(e.g. http://h:1\)"):
        resolve_url(None, "X_URL", "engine", example="http://h:1")
    with pytest.raises(EngineError, match="engine: no server URL; set url in the catalogue"):
        resolve_url("", "", "engine")
    for bad in ("gpu-box:8000", "ftp://gpu-box", "http://", "http://gpu-box:port"):
        with pytest.raises(EngineError, match=r"\(the catalogue's url\) is not an http\(s\) URL with a host"):
            resolve_url(bad, "X_URL", "engine")
    with pytest.raises(EngineError, match=r"is not an http\(s\) URL"):
        resolve_url("ws://gpu-box", None, "engine")  # a websocket URL where HTTP is spoken


@pytest.mark.parametrize(("engine_id", "variable"), SERVER_ENGINES.items())
def test_every_server_client_reads_its_url_the_same_way(engine_id: str, variable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = load_catalog().get(engine_id)
    cls = engine_class(entry.engine_class)
    assert issubclass(cls.Settings, ServerAddress) and entry.defaults.get("url_env", variable) == variable
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv(variable, "gpu-box:8091")  # no scheme: refused at load, naming the variable
    with pytest.raises(EngineError, match=rf"'gpu-box:8091' \(\${variable}\) is not an"):
        cls(entry, "cpu").load()


def test_a_reply_that_is_not_the_format_is_a_server_failure_for_every_client() -> None:
    async def reply(request: web.Request) -> web.Response:
        return web.Response(body=b"<html>Bad Gateway</html>")

    app = web.Application()
    app.router.add_post("/generate", reply)
    with FakeHTTPServer(app) as url:
        settings = ServerSettings(url=url)
        failure = pytest.raises(ServerFailure, match="the model sent something that is not its reply format: not a frame")
        with failure, post_stream(url + "/generate", {}, settings, "the model") as response:
            assert response.read() == b"<html>Bad Gateway</html>"
            raise ProtocolError("not a frame")


def test_cascade_stages_read_their_base_url_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    from speechlm_demo.engines.openai_http import stage_client

    monkeypatch.delenv("OLLAMA_URL", raising=False)
    with pytest.raises(EngineError, match=r"llm \(LLM server\): no server URL; set OLLAMA_URL \(or base_url in the catalogue\)"):
        stage_client("llm", "LLM server", "/chat/completions", None, "OLLAMA_URL")
    monkeypatch.setenv("OLLAMA_URL", "127.0.0.1:11434")
    with pytest.raises(EngineError, match=r"'127.0.0.1:11434' \(\$OLLAMA_URL\) is not an http\(s\) URL"):
        stage_client("llm", "LLM server", "/chat/completions", "http://fallback:1", "OLLAMA_URL")
    monkeypatch.setenv("OLLAMA_URL", "http://127.0.0.1:11434/v1/")
    client, url = stage_client("llm", "LLM server", "/chat/completions", None, "OLLAMA_URL")
    client.close()
    assert url == "http://127.0.0.1:11434/v1/chat/completions"
