"""FastRTC glue: WebRTC frames in -> engine session -> audio frames and UI updates out.

:class:`EngineStreamHandler` is the only place that knows both fastrtc and the engine seam. It
hands whatever the browser sends (any rate, channels, dtype) to the session, whose input guard checks and
converts it once (with the low-delay resampler: what it holds back is latency), resamples reply audio to the output rate, flushes queued audio on barge-in and publishes the transcript and
each finished turn's record (made by the one observer, :mod:`speechlm_demo.measure.observer`) as
``AdditionalOutputs``. While a half-duplex session has nothing to play it sends silence paced in real time
(:mod:`speechlm_demo.rtc_idle`). A live turn has no reference end of speech: its latency is measured from the turn
layer's own end of speech, and the status line says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from fastrtc import AdditionalOutputs, AsyncStreamHandler

from .audio import LowDelayResampler
from .engines.base import (
    AudioOut,
    EngineError,
    EngineSession,
    ErrorEvent,
    Event,
    Interrupt,
    SessionOptions,
    TextOut,
    TurnEnd,
)
from .engines.registry import EngineRegistry
from .env_settings import env_int
from .measure.observer import TurnObserver
from .measure.record import TurnRecord
from .rtc_idle import IdlePacer, idle_silence_enabled
from .timeline import usage_note

log = logging.getLogger(__name__)

OUTPUT_SAMPLE_RATE = 48_000  # what Opus encodes: a 24 kHz stream waits one more frame in aiortc's resampler
OUTPUT_FRAME = OUTPUT_SAMPLE_RATE // 50  # FastRTC cuts what emit() gives it into 20 ms frames, holding the rest
CLOSED_POLL_S = 0.5  # after the connection closed, emit() answers None this often (FastRTC stops asking)
MAX_SESSIONS_ENV = "SPEECHLM_MAX_SESSIONS"
TURN_ENV = ("SPEECHLM_TURN_URLS", "SPEECHLM_TURN_USERNAME", "SPEECHLM_TURN_CREDENTIAL")


def max_sessions() -> int:
    """How many WebRTC connections a stream serves at once (``SPEECHLM_MAX_SESSIONS``, default 8, at least 1)."""
    return env_int(MAX_SESSIONS_ENV, 8, minimum=1)


def ice_servers() -> list[dict[str, Any]]:
    """TURN servers from the environment; an empty list (loopback / LAN only) when none are set."""
    urls = [u.strip() for u in os.environ.get(TURN_ENV[0], "").split(",") if u.strip()]
    if not urls:
        return []
    server: dict[str, Any] = {"urls": urls}
    if os.environ.get(TURN_ENV[1]):
        server["username"] = os.environ[TURN_ENV[1]]
        server["credential"] = os.environ.get(TURN_ENV[2], "")
    return [server]


def browser_rtc_configuration() -> dict[str, Any] | None:
    """What the browser's RTCPeerConnection gets: TURN servers if configured, else nothing."""
    servers = ice_servers()
    return {"iceServers": servers} if servers else None


def server_rtc_configuration() -> dict[str, Any]:
    """What aiortc gets: the same servers, and explicitly none otherwise (no public STUN)."""
    return {"iceServers": ice_servers()}


WARNING = "⚠️ "  # how a warning message starts (its own message, never merged with a reply's text)


@dataclass
class Conversation:
    """What the Talk tab shows: chat messages, recent turns' timelines, a status line."""

    messages: list[dict[str, str]] = field(default_factory=list)
    timelines: list[dict[str, Any]] = field(default_factory=list)
    status: str = ""
    _turn_first: int | None = None  # index of the first message of the turn in progress
    _warned: list[str] = field(default_factory=list)  # the warnings shown since the last turn ended

    def add(self, role: str, text: str) -> None:
        """Append a message; consecutive agent texts of one turn form one message (a warning is always a
        message of its own); the user's words go before the turn's reply even when they come after it (the
        turn layer's recogniser may finish after a reply that the silence rule committed)."""
        in_turn = self._turn_first is not None and len(self.messages) > self._turn_first
        last = self.messages[-1] if in_turn else None
        if role == "assistant" and last is not None and last["role"] == "assistant":
            if not (last["content"].startswith(WARNING) or text.startswith(WARNING)):
                last["content"] = (last["content"] + " " + text).strip()
                return
        if role == "user" and in_turn and self._turn_first is not None:
            self.messages.insert(self._turn_first, {"role": role, "content": text})
            return
        if self._turn_first is None:
            self._turn_first = len(self.messages)
        self.messages.append({"role": role, "content": text})

    def end_turn(self, user_placeholder: str | None) -> None:
        """Close the turn; engines without ASR get a placeholder where the user's words would be."""
        if user_placeholder is not None:
            at = len(self.messages) if self._turn_first is None else self._turn_first
            self.messages.insert(at, {"role": "user", "content": user_placeholder})
        self._turn_first = None
        self._warned.clear()

    def warn(self, text: str) -> None:
        """Show a warning (its own message); ``text`` is remembered until the turn ends (see :meth:`warned`)."""
        self._warned.append(text)
        self.add("assistant", WARNING + text)

    def warned(self, text: str) -> bool:
        """Whether ``text`` was shown as a warning since the last turn ended."""
        return text in self._warned

    def snapshot(self) -> AdditionalOutputs:
        """An immutable copy for the UI."""
        return AdditionalOutputs([dict(m) for m in self.messages], list(self.timelines), self.status)


class EngineStreamHandler(AsyncStreamHandler):
    """One WebRTC connection talking to one engine session.

    ``ui_args``: read the engine id (and system prompt) from the Gradio inputs sent with the stream;
    otherwise (plain API clients) use ``engine_id``. ``options``: what every session starts from (the UI's
    system prompt and voice go on top; ``bench`` gives both its paths the same seed).
    """

    def __init__(
        self,
        registry: EngineRegistry,
        engine_id: str | None = None,
        *,
        ui_args: bool = True,
        options: SessionOptions | None = None,
    ) -> None:
        super().__init__(expected_layout="mono", output_sample_rate=OUTPUT_SAMPLE_RATE, input_sample_rate=48_000)
        self.registry = registry
        self.engine_id = engine_id
        self.ui_args = ui_args
        self.options = options or SessionOptions()
        self.session: EngineSession | None = None
        self.conversation = Conversation()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._ready = asyncio.Event()  # set by every put: wakes emit() waiting for an item or for silence
        self._idle: IdlePacer | None = None  # half-duplex with SPEECHLM_RTC_IDLE_SILENCE: silence while idle
        self._out_resampler = LowDelayResampler(OUTPUT_SAMPLE_RATE)  # what it holds back is latency
        self._out_samples = 0  # reply audio given to FastRTC or queued for it since the last whole frame
        self._pad_replies = False  # half-duplex: each reply ends on a whole frame
        self._loop: asyncio.AbstractEventLoop | None = None
        self._observer: TurnObserver | None = None
        self._closed = False  # the connection is gone: nothing more is queued, emit() stops waiting

    def copy(self) -> EngineStreamHandler:
        """A fresh handler per connection (fastrtc calls this)."""
        return EngineStreamHandler(self.registry, self.engine_id, ui_args=self.ui_args, options=self.options)

    async def start_up(self) -> None:
        """Pick the engine, load it if needed and open a session."""
        self._loop = asyncio.get_running_loop()
        options = replace(self.options, extra=dict(self.options.extra))
        engine_id = self.engine_id or self.registry.default_id()
        if self.ui_args:
            await self.wait_for_args()
            args = list(self.latest_args)
            if args and args[0] == "__webrtc_value__":
                args = args[1:]
            args = args[1:]  # drop the WebRTC component's own value: [engine, system prompt, voice]
            if args and args[0]:
                engine_id = str(args[0])
            if len(args) > 1 and args[1]:
                options.system_prompt = str(args[1])
            if len(args) > 2 and str(args[2] or "").strip():
                options.voice = str(args[2]).strip()
        if engine_id is None:
            self._report("No engine is available on this host.")
            return
        label = self.registry.availability[engine_id].entry.label if engine_id in self.registry.availability else engine_id
        self._set_status(f"Loading {label}…")
        try:
            engine = await asyncio.to_thread(self.registry.get, engine_id)
            if self._closed:  # the peer left while the engine loaded: a session now would never be closed
                return
            self._observer = TurnObserver.for_engine(engine)
            self._pad_replies = engine.entry.duplex != "full"
            session = engine.open_session(options, self._emit_threadsafe)
        except EngineError as exc:
            self._report(str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - any engine bug becomes a message, the app keeps serving
            log.exception("opening a session on %s failed", engine_id)
            self._report(f"{label} could not start a session: {exc}")
            return
        session.input_guard.use_low_delay_resampler()
        self._out_resampler.prime(engine.entry.sample_rates.output)
        self.session = session
        if self._pad_replies and idle_silence_enabled():
            self._idle = IdlePacer(OUTPUT_FRAME / OUTPUT_SAMPLE_RATE)
        self._set_status(f"Connected to {label}. Speak!")

    async def receive(self, frame: tuple[int, np.ndarray]) -> None:
        """Feed a browser frame to the session; its input guard reports bad frames (once per kind) and skips them."""
        if self.session is None:
            return
        try:
            rate, samples = frame
            self.session.push_audio(samples, rate)
        except Exception as exc:  # noqa: BLE001
            log.exception("session failed on input")
            self._report(f"The engine failed on input and was stopped: {exc}")
            self._close_session()

    async def emit(self) -> Any:
        """Next audio frame or UI update (waits until there is one)."""
        item, _ = await self.next_output()
        return item

    async def next_output(self) -> tuple[Any, bool]:
        """What :meth:`emit` hands FastRTC next, and whether it is idle silence: a queued item as soon as
        there is one; while there is none, a 20 ms frame of silence when the pacer says the stream has run
        dry (half-duplex sessions with idle silence on). Once the connection is closed, ``None`` (after a short
        pause, so a caller that keeps asking does not spin): FastRTC's output loop then sees its track stopped
        and ends, instead of waiting here for its 60 s timeout with the handler held."""
        while self._queue.empty():
            if self._closed:
                await asyncio.sleep(CLOSED_POLL_S)
                return None, False
            self._ready.clear()
            wait = None if self._idle is None else self._idle.due_in(time.monotonic())
            if wait is not None and wait <= 0:
                self._idle.handed(OUTPUT_FRAME / OUTPUT_SAMPLE_RATE, time.monotonic())  # type: ignore[union-attr]
                return (OUTPUT_SAMPLE_RATE, np.zeros((1, OUTPUT_FRAME), np.float32)), True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), wait)
        item = self._queue.get_nowait()
        if isinstance(item, tuple) and self._idle is not None:
            self._idle.handed(item[1].shape[-1] / item[0], time.monotonic())
        return item, False

    def shutdown(self) -> None:
        """Connection closed: close the session; what the engine still emits is dropped (no one can receive
        it: FastRTC would log a traceback for each UI update sent on the closed data channel)."""
        self._closed = True
        self._queue = asyncio.Queue()
        self._ready.set()
        self._close_session()

    def _close_session(self) -> None:
        session, self.session = self.session, None
        if session is not None:
            try:
                session.close()
            except Exception:  # noqa: BLE001
                log.exception("closing session failed")

    def _emit_threadsafe(self, event: Event) -> None:
        """From the engine's thread: the observer sees the event as it is emitted, then the loop handles it.
        Once the peer is gone (``shutdown()``), what a reply still running emits is dropped here: no turn is
        recorded and no audio resampled for nobody."""
        if self._closed:
            self._after_close(event)
            return
        record = self._observer.observe(event) if self._observer is not None else None
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._on_event, event, record)

    def _after_close(self, event: Event) -> None:
        """What the engine emits after the peer left (dropped here; the benchmark's handler still measures it)."""

    def _on_event(self, event: Event, record: TurnRecord | None = None) -> None:
        if self._closed:  # emitted before the peer left, handled after: nobody will hear it
            return
        if isinstance(event, AudioOut):
            if len(event.pcm):
                self._queue_audio(self._out_resampler(event.pcm, event.sample_rate))
        elif isinstance(event, TextOut):
            if event.final:
                self.conversation.add("user" if event.role == "user" else "assistant", event.text)
                self._publish()
        elif isinstance(event, Interrupt):
            self._flush_audio()
            self.conversation.add("assistant", "(interrupted)")
            self._publish()
        elif isinstance(event, ErrorEvent):
            self.conversation.warn(event.message)
            self._publish()
        elif isinstance(event, TurnEnd):
            if self._pad_replies:
                self._end_reply_on_a_frame()
            if record is not None:
                self._on_turn_end(record)

    def _queue_audio(self, out: np.ndarray) -> None:
        if len(out):
            self._out_samples = (self._out_samples + len(out)) % OUTPUT_FRAME
            self._put((OUTPUT_SAMPLE_RATE, out.reshape(1, -1)))

    def _end_reply_on_a_frame(self) -> None:
        """Give FastRTC the reply's last samples and silence up to a whole 20 ms frame: otherwise its framing
        keeps up to 20 ms of this reply and plays them before the next one."""
        tail = self._out_resampler.flush()
        pad = -(self._out_samples + len(tail)) % OUTPUT_FRAME
        self._queue_audio(np.concatenate([tail, np.zeros(pad, np.float32)]))

    def _on_turn_end(self, record: TurnRecord) -> None:
        """The turn's record (the one observer's): its timeline for the plot, its latency for the status line."""
        timeline = record.timeline
        if record.status == "failed" and record.detail and not self.conversation.warned(record.detail):
            self.conversation.warn(f"Turn failed: {record.detail}")  # unless its ErrorEvent said it already
        seconds = (timeline.between_ms("user_speech_start", "user_speech_end") or 0.0) / 1000
        self.conversation.end_turn(None if record.user_text else f"🎤 ({seconds:.1f} s of speech)")
        self.conversation.timelines = (self.conversation.timelines + [record.to_dict()])[-20:]
        self.conversation.status = f"Turn {record.turn_id}: {record.describe_latency()}{usage_note(timeline.extra)}"
        self._publish()

    def _flush_audio(self) -> None:
        self._out_resampler.flush()  # the interrupted reply's last ~1 ms must not open the next one
        items = self._drain()
        dropped = sum(item[1].shape[-1] for item in items if isinstance(item, tuple))
        self._out_samples = (self._out_samples - dropped) % OUTPUT_FRAME  # what FastRTC already has stays there
        kept = [item for item in items if isinstance(item, AdditionalOutputs)]
        for item in kept:
            self._put(item)
        if self._idle is not None:
            self._idle.restart()  # FastRTC's pacing restarts with its queue
        try:
            self.clear_queue()
        except Exception:  # noqa: BLE001 - not attached to a track (tests)
            log.debug("no playback queue to clear")

    def _drain(self) -> list[Any]:
        items = []
        while not self._queue.empty():
            items.append(self._queue.get_nowait())
        return items

    def _set_status(self, text: str) -> None:
        self.conversation.status = text
        self._publish()

    def _report(self, message: str) -> None:
        log.warning(message)
        self.conversation.warn(message)
        self.conversation.status = message
        self._publish()

    def _publish(self) -> None:
        self._put(self.conversation.snapshot())

    def _put(self, item: Any) -> None:
        if self._closed:
            return
        self._queue.put_nowait(item)
        self._ready.set()
