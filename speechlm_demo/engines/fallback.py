"""Answer a turn with a fallback engine (the cascade by default) when a model server cannot.

:class:`ServerEngine` is the base of the research-server clients. Its :meth:`ServerEngine.respond` asks
the server (:meth:`ServerEngine.respond_remote`); when the server is unreachable, refuses the turn, is busy
or fails before any of its reply went out, the turn is answered by the fallback engine instead. The session
is told once per outage; every such turn is marked: ``timeline.extra["answered_by"]`` names the fallback
(the Compare / Blind A/B record reads it) and the transcript's first agent line
starts with the fallback's name. A server that failed is not asked again until its back-off has passed
(doubling from ``health_backoff_s`` up to ``health_backoff_max_s``); then a quick reachability probe
decides whether the turn tries it again (a probe still running after :data:`PROBE_WAIT_S` leaves that turn to
the fallback and decides the next one).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, ClassVar

from ..turntaking.half_duplex import HalfDuplexEngine
from .base import (
    AudioOut,
    Engine,
    EngineError,
    EngineSettings,
    ErrorEvent,
    Event,
    Progress,
    SessionOptions,
    TextOut,
    UserTurn,
)
from .read_aside import Aside
from .server_client import ServerFailure, ServerSettings

if TYPE_CHECKING:
    from ..catalog import EngineEntry

log = logging.getLogger(__name__)

FallbackSource = Callable[[str], Engine]
PROBE_WAIT_S = 0.5  # how long a turn waits for a down server's probe before its fallback answers it
PROBE_FRESH_S = 5.0  # how long a finished probe's outcome may decide a later turn


def catalogue_engine(engine_id: str) -> Engine:
    """Build and load ``engine_id`` from the default catalogue (used when no registry supplied a source)."""
    from ..catalog import load_catalog
    from .registry import engine_class

    with _BUILT_LOCK:
        engine = _BUILT.get(engine_id)
        if engine is None:
            entry = load_catalog().get(engine_id)
            engine = engine_class(entry.engine_class)(entry, "cpu")
            _BUILT[engine_id] = engine
    engine.load()
    return engine


_BUILT: dict[str, Engine] = {}
_BUILT_LOCK = threading.Lock()


class Health:
    """Whether a server is worth asking now; failures back off exponentially."""

    def __init__(self, first_s: float, max_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.first_s, self.max_s, self.clock = first_s, max_s, clock
        self.down_reason = ""
        self.retry_at = 0.0
        self._wait_s = 0.0
        self._lock = threading.Lock()

    @property
    def up(self) -> bool:
        """No failure since the last success."""
        return not self.down_reason

    def due(self) -> bool:
        """Up, or down and its back-off has passed (time to try it again)."""
        return self.up or self.clock() >= self.retry_at

    def failed(self, reason: str) -> None:
        """The server failed: wait longer before the next try."""
        with self._lock:
            self._wait_s = self.first_s if self.up else min(self.max_s, self._wait_s * 2)
            self.down_reason = reason
            self.retry_at = self.clock() + self._wait_s

    def succeeded(self) -> None:
        """The server answered: back to normal."""
        with self._lock:
            self.down_reason, self._wait_s, self.retry_at = "", 0.0, 0.0


class ServerEngine(HalfDuplexEngine):
    """A half-duplex client of a model server, with a fallback engine for the turns the server cannot take."""

    Settings: ClassVar[type[EngineSettings]] = ServerSettings
    settings: ServerSettings
    fallback_source: FallbackSource | None = None  # set by the registry; else built from the catalogue

    def __init__(self, entry: EngineEntry, device: str = "cpu") -> None:
        super().__init__(entry, device)
        self.health = Health(self.settings.health_backoff_s, self.settings.health_backoff_max_s)
        self._told: set[int] = set()  # sessions (options objects) told about the current outage
        self._told_lock = threading.Lock()
        self._probe: Aside[None] | None = None  # the down server's probe, running or with an outcome no turn took yet
        self._probe_lock = threading.Lock()
        self._noted: set[int] = set()  # sessions (options objects) given the note of :meth:`note_once`

    # -- for subclasses ---------------------------------------------------------------------------------
    def connect(self, progress: Progress) -> None:
        """Resolve the URL and check the server answers; raise :class:`ServerFailure` if it does not."""

    def probe(self) -> None:
        """A quick check that the server is back (default: :meth:`connect` without progress)."""
        self.connect(lambda fraction, message: None)

    def respond_remote(self, turn: UserTurn, history: list[dict], options: SessionOptions) -> Iterator[Event]:
        """Answer ``turn`` with the server; raise :class:`ServerFailure` when it cannot."""
        raise NotImplementedError

    def note_once(self, options: SessionOptions, message: str) -> Iterator[Event]:
        """``message`` as an :class:`ErrorEvent`, the first time only for this session (e.g. "text only")."""
        if id(options) not in self._noted:
            self._noted.add(id(options))
            yield ErrorEvent(f"{self.entry.label}: {message}")

    # -- the engine --------------------------------------------------------------------------------------
    def _load(self, progress: Progress) -> None:
        try:
            self.connect(progress)
        except ServerFailure as exc:
            if not self.settings.fallback:
                raise
            self.health.failed(str(exc))
            log.warning("%s: %s; its turns go to %s until it answers", self.id, exc, self.settings.fallback)
            progress(0.5, f"server down, loading the fallback {self.settings.fallback}")
            self._fallback_engine()
            return
        if self.settings.fallback:  # ready before it is needed: a first fallback turn must not wait for a load
            threading.Thread(target=self._preload_fallback, name=f"fallback-{self.id}", daemon=True).start()

    def _preload_fallback(self) -> None:
        try:
            self._fallback_engine()
        except EngineError as exc:
            log.warning("%s: %s", self.id, exc)

    def respond(self, turn: UserTurn, history: list[dict], options: SessionOptions) -> Iterator[Event]:
        """The server's answer, or the fallback's when the server cannot answer this turn."""
        reason = self.health.down_reason
        if self.health.due():
            started, sent = len(history), False
            try:
                ask = self.health.up or self._server_back(turn.cancel)
                if ask is None:
                    return  # the reply was cancelled while the server was probed
                if ask:  # else still probing: this turn is the fallback's, the probe's outcome the next one's
                    for event in self.respond_remote(turn, history, options):
                        sent = sent or isinstance(event, (TextOut, AudioOut))
                        yield event
                    self.health.succeeded()
                    self._forget_probe()
                    with self._told_lock:
                        self._told.clear()
                    return
            except ServerFailure as exc:
                reason = str(exc)
                self.health.failed(reason)
                self._forget_probe()
                del history[started:]
                if sent or not self.settings.fallback:
                    raise  # part of the reply went out: this turn fails; the next goes to the fallback
        elif not self.settings.fallback:
            raise ServerFailure(f"{reason} (next try in {max(0.0, self.health.retry_at - time.monotonic()):.0f} s)")
        yield from self._answer_with_fallback(turn, history, options, reason)

    def _server_back(self, cancel: threading.Event) -> bool | None:
        """Down and due: probe the server (one probe at a time, in a thread of its own) and wait for it, at most
        :data:`PROBE_WAIT_S` when there is a fallback. True: it answers (its failure is raised here); False: still
        probing (a server that accepts and does not answer): this turn goes to the fallback, and the probe's
        outcome is the next due turn's (if fresh); None: ``cancel`` came first (the probe goes on for the next turn).
        One outcome serves one turn: others waiting on the same probe go to the fallback."""
        with self._probe_lock:
            probe = self._probe
            if probe is None or (probe.done.is_set() and time.monotonic() - probe.finished_at > PROBE_FRESH_S):
                probe = self._probe = Aside(f"probe-{self.id}", self.probe)
        if not probe.wait(cancel, PROBE_WAIT_S if self.settings.fallback else float("inf")):
            return None if cancel.is_set() else False
        with self._probe_lock:
            if self._probe is not probe:
                return False  # another turn took this outcome
            self._probe = None
        try:
            probe.result()
        except ServerFailure:
            raise
        except BaseException as exc:  # noqa: BLE001 - a probe that breaks counts as a server that does not answer
            raise ServerFailure(f"the probe failed: {exc!r}") from exc
        return True

    def _forget_probe(self) -> None:
        """The server's state is known anew (it answered, or failed a turn): an earlier probe's outcome is moot."""
        with self._probe_lock:
            self._probe = None

    def _fallback_engine(self) -> HalfDuplexEngine:
        name = self.settings.fallback or ""
        source = self.fallback_source or catalogue_engine
        try:
            engine = source(name)
        except Exception as exc:
            raise EngineError(f"the fallback engine {name!r} could not be loaded: {exc}") from exc
        if not isinstance(engine, HalfDuplexEngine) or engine is self:
            raise EngineError(f"the fallback engine {name!r} must be another half-duplex engine")
        return engine

    def _answer_with_fallback(
        self, turn: UserTurn, history: list[dict], options: SessionOptions, reason: str
    ) -> Iterator[Event]:
        fallback = self._fallback_engine()
        with self._told_lock:
            first = id(options) not in self._told
            self._told.add(id(options))
        if first:
            yield ErrorEvent(f"{reason}. {fallback.entry.label} answers instead until the server is back.")
        turn.timeline.extra["answered_by"] = fallback.id
        turn.timeline.extra["fallback_reason"] = reason
        own = [m for m in history if isinstance(m.get("content"), str) and m.get("role") in ("user", "assistant")]
        kept = {id(m) for m in own}
        prefixed = False
        try:
            for event in fallback.respond(turn, own, options):
                if isinstance(event, TextOut) and event.role == "agent" and not prefixed:
                    event = TextOut(f"[{fallback.id}] {event.text}", "agent", event.final)
                    prefixed = event.final
                yield event
        finally:
            if turn.cancel.is_set():  # a dropped speculative reply may have carried the notice: tell again
                with self._told_lock:
                    self._told.discard(id(options))
        history.extend({**m, "answered_by": fallback.id} for m in own if id(m) not in kept)
