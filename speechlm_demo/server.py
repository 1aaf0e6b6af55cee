"""Build and serve the app: the Gradio UI at ``/``, FastRTC's WebRTC offer route at ``/rtc/webrtc/offer``,
health at ``/api/health``.

Only what the app uses is served: of FastRTC's routes only the WebRTC offer (its websocket and telephone
routes are not mounted), and Gradio's upload route refuses every upload (no component of the app uploads
files; a size cap backs this up). The page sets the signed voter cookie of the blind votes.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import logging
import os
import sys
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import gradio as gr
import uvicorn
from fastapi import FastAPI
from fastrtc import Stream
from starlette.routing import Mount

from .catalog import CatalogError, load_catalog
from .cli_types import host_spec, port_number
from .engines.registry import EngineRegistry
from .env_settings import GRADIO_PORT_ENV, env_int
from .hardware import probe, simulated_host
from .rtc import EngineStreamHandler, browser_rtc_configuration, max_sessions, server_rtc_configuration
from .rtc_jitter import apply_receive_jitter_frames
from .rtc_offer import guarded_offer
from .ui.layout import build_demo
from .votes.pairs import blind_candidates
from .votes.store import StoreError, VoteStore
from .votes.voter import VoterCookieMiddleware, VoterIds

log = logging.getLogger(__name__)

RTC_PREFIX = "/rtc"
PRELOAD_ENV = "SPEECHLM_PRELOAD"
EXIT_WAIT_S = 15.0  # how long an exiting process waits for engines still loading (a hub download may not end)
GRACEFUL_SHUTDOWN_S = 5.0  # how long Ctrl-C waits for requests still running (a page's queue stream) before cancelling them
CLOSE_WAIT_S = 5.0  # how long shutting down waits for the engines to close (a remote engine's goodbye)
STARTUP_FAILURE = 3  # uvicorn's exit status when the server cannot start (the port is taken)
MAX_FILE_SIZE = "1mb"  # Gradio's own cap on uploads, behind the refusal below
UPLOAD_PATHS = ("/gradio_api/upload", "/gradio_api/process_recording")  # the app has no upload or recording control


@dataclass
class AppConfig:
    """How to start the app (CLI flags, falling back to environment variables)."""

    engine: str | None = None
    server_name: str = "127.0.0.1"
    port: int = 7860
    catalog: str | None = None
    simulate_host: str | None = None


def parse_app_args(argv: list[str]) -> AppConfig:
    """``python app.py [--engine ID] [--port N] [--server-name HOST] [--catalog FILE]``; a bad port or
    simulated host stops it here (exit 2, with the reason), before anything is loaded."""
    parser = argparse.ArgumentParser(prog="app.py", description="Run the SpeechLM Playground.")
    parser.add_argument("--engine", default=os.environ.get("SPEECHLM_ENGINE"), help="preselect this engine id")
    parser.add_argument("--port", type=port_number, default=env_int(GRADIO_PORT_ENV, 7860))
    parser.add_argument("--server-name", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"))
    parser.add_argument("--catalog", default=None, help="engine catalogue YAML (default configs/engines.yaml)")
    parser.add_argument("--simulate-host", type=host_spec, default=None, help="pretend host: cpu, cuda:GB, rocm:GB (demo only)")
    args = parser.parse_args(argv)
    return AppConfig(args.engine, args.server_name, args.port, args.catalog, args.simulate_host)


def create_registry(config: AppConfig) -> EngineRegistry:
    """Load the catalogue (exits with a readable message if it is malformed) and probe the host."""
    try:
        catalog = load_catalog(config.catalog)
    except CatalogError as exc:
        log.error("%s", exc)
        sys.stderr.write(f"error: {exc}\n")
        raise SystemExit(2) from None
    try:
        host = simulated_host(config.simulate_host) if config.simulate_host else probe()
    except ValueError as exc:  # --simulate-host is checked when parsed; this is for configs built in code
        sys.stderr.write(f"error: --simulate-host: {exc}\n")
        raise SystemExit(2) from None
    log.info("host: %s", host.describe())
    registry = EngineRegistry(catalog, host)
    if config.engine and config.engine not in registry.availability:
        sys.stderr.write(f"error: unknown engine {config.engine!r}; known: {', '.join(registry.availability)}\n")
        raise SystemExit(2)
    return registry


def open_vote_store() -> VoteStore | None:
    """The vote store (``SPEECHLM_DB_URL`` or SQLite in the data directory). A database that cannot be opened
    yet is tried again at each use; None, logged, only for a URL that can never work (malformed, no driver)."""
    try:
        return VoteStore(lazy=True)
    except StoreError:
        log.exception("the vote store URL is unusable; voting and the leaderboard are unavailable")
        return None


class RefuseUploads:
    """ASGI middleware: Gradio's upload routes answer 403 (the app has no upload or recording control)."""

    def __init__(self, app: object) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: object, send: object) -> None:
        if scope["type"] == "http" and scope.get("path", "").rstrip("/") in UPLOAD_PATHS:
            from starlette.responses import PlainTextResponse

            await PlainTextResponse("uploads are not accepted here\n", status_code=403)(scope, receive, send)
            return
        await self.app(scope, receive, send)  # type: ignore[operator]


def _wait_for_loads(registry: weakref.ref[EngineRegistry]) -> None:
    """At exit: wait for the registry's background loads, unless it is gone (then none runs: a loader holds it)."""
    alive = registry()
    if alive is not None:
        alive.wait_for_loads(EXIT_WAIT_S)


def create_demo(config: AppConfig) -> tuple[gr.Blocks, EngineRegistry]:
    """The Blocks app (``demo``) and the registry behind it."""
    registry = create_registry(config)
    engine_id = config.engine or registry.default_id()
    if engine_id:
        registry.preload(engine_id)  # loads while the UI is built and the server starts
    if os.environ.get(PRELOAD_ENV, "").strip() == "blind":
        for entry in blind_candidates(registry):  # so load times cannot hint at a blind round's engines
            if entry.id != engine_id:
                registry.preload(entry.id)
    atexit.register(_wait_for_loads, weakref.ref(registry))  # a process that exits at once lets them finish
    return build_demo(registry, config.engine, open_vote_store()), registry


def mount_rtc(app: FastAPI, handler: EngineStreamHandler) -> Stream:
    """The FastRTC stream of ``handler`` at ``/rtc`` (the benchmark mounts the same one); the server's audio
    receivers wait for :func:`~.rtc_jitter.receive_jitter_frames` later frames, not aiortc's 4."""
    apply_receive_jitter_frames()
    stream = Stream(
        handler=handler,
        modality="audio",
        mode="send-receive",
        rtc_configuration=browser_rtc_configuration(),
        server_rtc_configuration=server_rtc_configuration(),
        concurrency_limit=max_sessions(),
    )
    # Only the offer route (checked, and cleaned up after on failure: :mod:`.rtc_offer`): FastRTC's websocket
    # route misreads telephone audio and its telephone routes need twilio; the app offers neither.
    app.post(f"{RTC_PREFIX}/webrtc/offer")(guarded_offer(stream))
    return stream


def _closing(registry: EngineRegistry) -> Callable[[FastAPI], contextlib.AbstractAsyncContextManager[None]]:
    """The app's lifespan: the engines are released when the server shuts down (a graceful shutdown runs it
    before Ctrl-C ends the process, see :mod:`.interrupt`). In a worker thread: an engine's close may wait on
    an event loop of its own; at most :data:`CLOSE_WAIT_S`, since Ctrl-C cannot cut it short."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            try:
                await asyncio.wait_for(asyncio.to_thread(registry.close), CLOSE_WAIT_S)
            except TimeoutError:
                log.warning("the engines did not close within %.0f s; not waiting for them", CLOSE_WAIT_S)

    return lifespan


def create_api(demo: gr.Blocks, registry: EngineRegistry, engine_id: str | None) -> FastAPI:
    """FastAPI app with the RTC routes, a health endpoint and the UI mounted at ``/``; its shutdown releases the
    registry's engines."""
    app = FastAPI(title="SpeechLM Playground", lifespan=_closing(registry))
    mount_rtc(app, EngineStreamHandler(registry, engine_id, ui_args=False))

    @app.get("/api/health")
    def health() -> dict:
        # Only the default engine: which other engines are loading would tell a blind voter what was drawn.
        default = engine_id or registry.default_id()
        states = {default: registry.state(default).status} if default else {}
        return {"ready": default is not None and states.get(default) == "ready", "default": default, "engines": states}

    app.add_middleware(RefuseUploads)
    app.add_middleware(VoterCookieMiddleware, ids=VoterIds())
    app = gr.mount_gradio_app(app, demo, path="", max_file_size=MAX_FILE_SIZE)
    for mounted in _gradio_apps(app):
        mounted.debug = False  # Gradio builds its app with debug on: a failing request got the server's traceback
    return app


def _gradio_apps(app: FastAPI) -> list[Any]:
    """The Gradio apps mounted in ``app`` (they are the mounts with a ``stop_event``)."""
    return [route.app for route in app.routes if isinstance(route, Mount) and hasattr(route.app, "stop_event")]


class _Server(uvicorn.Server):
    """uvicorn's server that ends Gradio's heartbeat streams when it shuts down: every open page holds one, and
    a graceful shutdown waits for open connections, so one browser tab kept Ctrl-C from ending the app (and
    the engines from being released). Gradio's own ``Blocks.close`` does the same. Read from uvicorn 0.54
    (``server.py``: ``shutdown`` waits for connections, ``capture_signals`` re-raises SIGINT after it) and gradio
    5.50 (``routes.py``: the ``heartbeat`` stream ends on ``app.stop_event``)."""

    async def shutdown(self, sockets: list | None = None) -> None:
        for mounted in _gradio_apps(self.config.app):
            mounted.stop_event.set()
        await super().shutdown(sockets)


def serve(demo: gr.Blocks, registry: EngineRegistry, config: AppConfig) -> None:
    """Serve until interrupted (the selected engine is already loading, see :func:`create_demo`). Under an entry
    point, Ctrl-C shuts the server down (releasing the engines), then ends the process there (exit status 130,
    :mod:`.interrupt`)."""
    app = create_api(demo, registry, config.engine or registry.default_id())
    log.info("SpeechLM Playground on http://%s:%d", config.server_name, config.port)
    settings = uvicorn.Config(app, host=config.server_name, port=config.port, log_level="warning",
                              timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    server = _Server(settings)
    server.run()
    if not server.started:  # logged by uvicorn (e.g. the port is taken)
        raise SystemExit(STARTUP_FAILURE)
