"""The OpenAI-compatible streaming client against a fake SSE server on 127.0.0.1.

The server picks its behaviour from the request's ``model`` field.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.cascade.llm import LLM, OpenAICompatibleLLM, build_llm

PIECES = ["Paris", " is", " the", " capital", "."]


def event(piece: str) -> bytes:
    return b"data: " + json.dumps({"choices": [{"index": 0, "delta": {"content": piece}}]}).encode() + b"\n\n"


class FakeServer(ThreadingHTTPServer):
    daemon_threads = True
    release: threading.Event
    requests: list[tuple[str, dict[str, str], dict]]
    silent_replies: int  # this many next requests are accepted and then get not a byte


class Handler(BaseHTTPRequestHandler):
    server: FakeServer

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, dict(self.headers), body))
        if self.server.silent_replies:
            self.server.silent_replies -= 1
            self.server.release.wait(10)
            return
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up: expected
            getattr(self, "reply_" + body["model"])()

    def start(self, status: int = 200, content_type: str = "text/event-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.end_headers()

    def send(self, data: bytes) -> None:
        self.wfile.write(data)
        self.wfile.flush()

    def reply_normal(self) -> None:
        self.start()
        self.send(b": keep-alive comment\n\n")
        self.send(b'data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}\n\n')
        for piece in PIECES:
            self.send(event(piece))
        self.send(b'data: {"choices":[]}\n\ndata: [DONE]\n\n')
        self.send(event(" ignored after DONE"))

    def reply_slow(self, gap_s: float = 0.25) -> None:
        self.start()
        for piece in PIECES:
            time.sleep(gap_s)
            self.send(event(piece))
        self.send(b"data: [DONE]\n\n")

    def reply_slower(self) -> None:
        self.reply_slow(gap_s=0.8)

    def reply_stall(self) -> None:
        self.start()
        self.send(event("Paris"))
        self.server.release.wait(10)

    def reply_error500(self) -> None:
        self.start(500, "application/json")
        self.send(json.dumps({"error": {"message": "model exploded", "code": 500}}).encode())

    def reply_malformed(self) -> None:
        self.start()
        self.send(event("Paris"))
        self.send(b"data: {not json\n\n")

    def reply_html(self) -> None:
        self.start(200, "text/html")
        self.send(b"<html><body>Welcome to nginx!</body></html>\n")

    def reply_midway(self) -> None:
        self.start()
        self.send(event("Paris"))  # then the connection closes without data: [DONE]

    def reply_sse_error(self) -> None:
        self.start()
        self.send(b'data: {"error": {"message": "context length exceeded"}}\n\n')

    def reply_json(self) -> None:
        self.start(200, "application/json")
        self.send(json.dumps({"choices": [{"message": {"role": "assistant", "content": "Paris."}}]}).encode())


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    fake = FakeServer(("127.0.0.1", 0), Handler)
    fake.release = threading.Event()
    fake.requests = []
    fake.silent_replies = 0
    thread = threading.Thread(target=fake.serve_forever, daemon=True)
    thread.start()
    yield fake
    fake.release.set()
    fake.shutdown()
    fake.server_close()


def client(server: FakeServer, mode: str, **kwargs: object) -> OpenAICompatibleLLM:
    return OpenAICompatibleLLM(f"http://127.0.0.1:{server.server_port}", mode, **kwargs)  # type: ignore[arg-type]


MESSAGES = [{"role": "user", "content": "What is the capital of France?"}]


def test_normal_stream(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_LLM_KEY", "sk-test")
    llm = build_llm(
        {
            "kind": "openai",
            "base_url": f"http://127.0.0.1:{server.server_port}/v1",
            "model": "normal",
            "api_key_env": "FAKE_LLM_KEY",
            "max_tokens": 12,
        }
    )
    assert isinstance(llm, LLM)
    assert list(llm.stream(MESSAGES, threading.Event(), temperature=0.2)) == PIECES
    path, headers, body = server.requests[-1]
    assert path == "/v1/chat/completions"
    assert headers["Authorization"] == "Bearer sk-test"
    assert body == {"model": "normal", "messages": MESSAGES, "stream": True, "max_tokens": 12, "temperature": 0.2}


def test_a_session_seed_is_sent_as_the_requests_seed(server: FakeServer) -> None:
    """OpenAI's chat completions, vLLM's ``ChatCompletionRequest`` (vllm 0.30.0,
    ``vllm/entrypoints/openai/chat_completion/protocol.py``: ``seed: int | None``) and Ollama's OpenAI endpoint
    (``openai/openai.go`` at 00988753: ``Seed *int `json:"seed"```) all take ``seed``; without one the request
    carries none (the server samples as it likes)."""
    llm = client(server, "normal")
    assert list(llm.stream(MESSAGES, threading.Event(), seed=7)) == PIECES
    assert server.requests[-1][2]["seed"] == 7
    list(llm.stream(MESSAGES, threading.Event()))
    assert "seed" not in server.requests[-1][2]


def test_missing_api_key_names_the_variable(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FAKE_LLM_KEY", raising=False)
    with pytest.raises(EngineError, match="set the environment variable FAKE_LLM_KEY"):
        list(client(server, "normal", api_key_env="FAKE_LLM_KEY").stream(MESSAGES, threading.Event()))


def test_http_error_status_shows_the_body(server: FakeServer) -> None:
    with pytest.raises(EngineError, match=r"answered HTTP 500: .*model exploded"):
        list(client(server, "error500").stream(MESSAGES, threading.Event()))


def test_connection_refused() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    llm = OpenAICompatibleLLM(f"http://127.0.0.1:{port}", "any")
    with pytest.raises(EngineError, match=rf"cannot connect to the LLM server http://127.0.0.1:{port}/v1"):
        list(llm.stream(MESSAGES, threading.Event()))


def test_stalled_server_hits_the_per_token_timeout(server: FakeServer) -> None:
    pieces: list[str] = []
    started = time.monotonic()
    with pytest.raises(EngineError, match=r"sent nothing for 0.5 s \(read timeout\)"):
        for piece in client(server, "stall", read_timeout=0.5).stream(MESSAGES, threading.Event()):
            pieces.append(piece)
    assert pieces == ["Paris"]
    assert time.monotonic() - started < 3


def test_a_server_that_accepts_and_says_nothing_fails_at_the_first_byte_timeout_and_the_next_turn_works(server: FakeServer) -> None:
    """Ollama or vLLM busy or hung: the request is accepted, then not a byte. The turn ends at the first-byte
    timeout (not the 30 s read timeout), naming the server; the same stage answers once the server does."""
    url = f"http://127.0.0.1:{server.server_port}/v1"
    llm = build_llm({"kind": "openai", "base_url": url, "model": "normal", "first_byte_timeout": 0.3, "read_timeout": 5})
    server.silent_replies = 1
    started = time.monotonic()
    silent = rf"the LLM server {url}/chat/completions accepts connections but does not answer \(the reply did not start within 0.3 s \(first-byte timeout\)\): is it busy or hung\?"
    with pytest.raises(EngineError, match=silent):
        list(llm.stream(MESSAGES, threading.Event()))
    assert time.monotonic() - started < 2
    assert list(llm.stream(MESSAGES, threading.Event())) == PIECES


def test_the_first_byte_timeout_bounds_only_the_start_of_the_reply(server: FakeServer) -> None:
    llm = client(server, "slower", first_byte_timeout=0.4, read_timeout=2.0)  # a token every 0.8 s
    assert list(llm.stream(MESSAGES, threading.Event())) == PIECES


@pytest.mark.parametrize("value", [0, -1.5, "soon", None, True])
def test_a_timeout_that_is_not_a_positive_number_is_refused(server: FakeServer, value: object) -> None:
    config = {"kind": "openai", "base_url": f"http://127.0.0.1:{server.server_port}", "model": "normal", "first_byte_timeout": value}
    with pytest.raises(EngineError, match=r"llm\.first_byte_timeout: Input should be (greater than 0|a valid number), not .+ \(llm kind openai\)"):
        build_llm(config)


def test_slow_tokens_are_fine_when_each_arrives_in_time(server: FakeServer) -> None:
    started = time.monotonic()
    assert list(client(server, "slow", read_timeout=0.6).stream(MESSAGES, threading.Event())) == PIECES
    assert time.monotonic() - started > 1.0  # longer in total than the per-token timeout


def test_cancel_stops_the_stream_early(server: FakeServer) -> None:
    cancel = threading.Event()
    pieces = []
    for piece in client(server, "slow").stream(MESSAGES, cancel):
        pieces.append(piece)
        cancel.set()
    assert pieces == ["Paris"]


def test_a_cancel_while_the_server_says_nothing_stops_at_once(server: FakeServer) -> None:
    """A barge-in while a busy server has not answered: the stream ends at the cancel, not at a timeout."""
    llm = build_llm({"kind": "openai", "base_url": f"http://127.0.0.1:{server.server_port}", "model": "normal", "first_byte_timeout": 8, "read_timeout": 9})
    server.silent_replies = 1
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    assert list(llm.stream(MESSAGES, cancel)) == []
    assert time.monotonic() - started < 3  # not the 8 s first-byte timeout
    assert list(llm.stream(MESSAGES, threading.Event())) == PIECES  # the stage still answers afterwards


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("malformed", r"malformed JSON .*not json"),
        ("html", r"malformed server-sent events: '<html>"),
        ("sse_error", r"reported an error: .*context length exceeded"),
        ("midway", r"stopped mid-reply \(the stream ended without \[DONE\]\)"),
    ],
)
def test_bad_streams_are_reported(server: FakeServer, mode: str, message: str) -> None:
    with pytest.raises(EngineError, match=message):
        list(client(server, mode).stream(MESSAGES, threading.Event()))


def test_a_non_streaming_json_reply_is_accepted(server: FakeServer) -> None:
    assert list(client(server, "json").stream(MESSAGES, threading.Event())) == ["Paris."]


def test_openai_kind_needs_url_and_model() -> None:
    with pytest.raises(EngineError, match="needs 'base_url' and 'model'"):
        build_llm({"kind": "openai", "model": "x"})
    with pytest.raises(EngineError, match="unknown LLM kind"):
        build_llm({"kind": "ollama"})
