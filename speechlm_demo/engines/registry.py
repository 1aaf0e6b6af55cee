"""Build engines from catalogue entries, load them once, remember load failures for the UI."""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from ..catalog import Availability, Catalog, offered
from ..class_policy import class_refusal
from ..hardware import HostInfo
from .base import Engine, EngineError, Progress
from .fallback import ServerEngine

log = logging.getLogger(__name__)


@dataclass
class LoadState:
    """Where an engine's loading stands."""

    status: str = "not loaded"  # not loaded | loading | ready | failed
    message: str = ""
    seconds: float | None = None


def engine_class(path: str, engine_packages: Sequence[str] = ()) -> type[Engine]:
    """Import ``package.module:ClassName``: only from the engine package or ``engine_packages``
    (checked before anything is imported, see :mod:`speechlm_demo.class_policy`)."""
    refusal = class_refusal(path, engine_packages)
    if refusal:
        raise EngineError(f"refused to import {path}: {refusal}")
    module_name, _, class_name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - an engine's import errors are reported, not raised raw
        raise EngineError(f"cannot import {module_name}: {exc}") from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Engine)):
        raise EngineError(f"{path} is not an Engine class")
    return cls


def _log_load_failure(engine_id: str, exc: Exception) -> None:
    """An :class:`EngineError` with a message is a reason (one ERROR line, its traceback at DEBUG); any other
    exception is a bug (its traceback at ERROR)."""
    if isinstance(exc, EngineError) and str(exc):
        log.error("loading %s failed: %s", engine_id, exc)
        log.debug("loading %s failed", engine_id, exc_info=exc)
    else:
        log.error("loading %s failed", engine_id, exc_info=exc)


class EngineRegistry:
    """The engines this host offers; each is built and loaded on first use, then shared."""

    def __init__(self, catalog: Catalog, host: HostInfo, *, allow_experimental: bool | None = None) -> None:
        self.catalog = catalog
        self.host = host
        self.availability: dict[str, Availability] = {
            a.entry.id: a for a in offered(catalog, host, allow_experimental=allow_experimental)
        }
        self._engines: dict[str, Engine] = {}
        self._states: dict[str, LoadState] = {eid: LoadState() for eid in self.availability}
        self._locks: dict[str, threading.Lock] = {eid: threading.Lock() for eid in self.availability}
        self._loaders: list[threading.Thread] = []
        self._loading = threading.local()  # ids this thread is loading (its ``ids``)
        self._closed = False

    def offered_ids(self) -> list[str]:
        """Ids of the engines available on this host, in catalogue order."""
        return [eid for eid, a in self.availability.items() if a.available]

    def default_id(self) -> str | None:
        """The catalogue's default if offered, else the first offered engine."""
        ids = self.offered_ids()
        if self.catalog.default_engine in ids:
            return self.catalog.default_engine
        return ids[0] if ids else None

    def state(self, engine_id: str) -> LoadState:
        """Loading state of an engine."""
        return self._states.get(engine_id, LoadState("failed", f"unknown engine {engine_id!r}"))

    def get(self, engine_id: str, progress: Progress | None = None) -> Engine:
        """The loaded engine; loads it (once, thread-safe) on first call. Raises :class:`EngineError`."""
        availability = self.availability.get(engine_id)
        if availability is None:
            raise EngineError(f"unknown engine {engine_id!r}")
        if not availability.available:
            raise EngineError(f"{availability.entry.label} is not available here: {availability.reason}")
        loading: set[str] = vars(self._loading).setdefault("ids", set())  # this thread's own set
        if engine_id in loading:  # e.g. fallbacks that lead back here: waiting for our own lock would never end
            raise EngineError(f"{availability.entry.label} is needed while it is loading (do its fallbacks lead back to it?)")
        with self._locks[engine_id]:
            loading.add(engine_id)
            try:
                return self._get_locked(engine_id, availability, progress)
            finally:
                loading.discard(engine_id)

    def _get_locked(self, engine_id: str, availability: Availability, progress: Progress | None) -> Engine:
        """:meth:`get` once this engine's lock is held."""
        if self._closed:
            raise EngineError(f"{availability.entry.label} is not loaded: the app is shutting down")
        engine = self._engines.get(engine_id)
        if engine is not None and engine.loaded:
            return engine
        state = self._states[engine_id]
        state.status, state.message = "loading", ""
        started = time.monotonic()
        try:
            if engine is None:
                cls = engine_class(availability.entry.engine_class, self.catalog.engine_packages)
                engine = cls(availability.entry, availability.device or "cpu")
                if isinstance(engine, ServerEngine):
                    engine.fallback_source = self.get  # a server's turns may be answered by another engine
                self._engines[engine_id] = engine
            engine.load(progress)
        except Exception as exc:  # noqa: BLE001 - load failures become UI messages
            _log_load_failure(engine_id, exc)
            state.status, state.message = "failed", f"{availability.entry.label} failed to load: {exc}"
            raise EngineError(state.message) from exc
        state.status, state.seconds = "ready", time.monotonic() - started
        state.message = f"{availability.entry.label} ready (loaded in {state.seconds:.1f} s)"
        log.info(state.message)
        return engine

    def preload(self, engine_id: str) -> threading.Thread:
        """Load in the background; failures land in :meth:`state`."""

        def run() -> None:
            try:
                self.get(engine_id)
            except EngineError:
                pass  # recorded in the state

        thread = threading.Thread(target=run, name=f"load-{engine_id}", daemon=True)
        thread.start()
        self._loaders = [t for t in self._loaders if t.is_alive()] + [thread]
        return thread

    def wait_for_loads(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s`` in all) for the background loads still running: a process that exits
        while a native loader runs can abort ("terminate called without an active exception"), and llama.cpp's
        loader points stdout at /dev/null meanwhile."""
        deadline = time.monotonic() + timeout_s
        for thread in self._loaders:
            thread.join(max(0.0, deadline - time.monotonic()))

    def close(self) -> None:
        """Release the engines and load none any more (what was released is logged at INFO). An engine still
        loading is left to its loader: closing it in the middle of its load breaks the load; the process is
        ending anyway. Closing twice does nothing more."""
        self._closed = True
        released = []
        for engine_id, lock in self._locks.items():
            if not lock.acquire(blocking=False):
                log.info("%s is still loading: not closed", engine_id)
                continue
            try:
                engine = self._engines.pop(engine_id, None)
                if engine is None:
                    continue
                loaded = engine.loaded
                engine.close()
                if loaded:
                    released.append(engine_id)
            except Exception:  # noqa: BLE001 - the others are still released
                log.exception("closing %s failed", engine_id)
            finally:
                lock.release()
        if released:
            log.info("released the engines: %s", ", ".join(released))
