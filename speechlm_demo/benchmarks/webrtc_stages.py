"""Where a WebRTC turn's time goes: one sample followed through every stage, on one clock.

Every stamp is ``time.monotonic()`` in the benchmark's process (server and peer live in it):

* ``true_end``: the peer has *spoken* the clip's true end of speech (clip start + sidecar ``speech_end_s``;
  its 20 ms frame leaves once its last sample is spoken, as a microphone delivers it).
* ``arrived``: the handler receives the frame holding that same sample. The received stream is aligned
  with the sent clip by cross-correlation, so the codec's delay and any frame lost on the way are
  accounted for.
* ``released``: the session releases the first audible reply sample: the one observer's ``first_audio_out``
  (:mod:`speechlm_demo.measure.observer`), the figure the in-process benchmark uses. Reply audio is laid
  on a *playback clock* (:class:`~speechlm_demo.measure.playback.PlaybackClock`): a piece starts playing
  when it is handed on or when the piece before it has finished, whichever is later; a sample plays its
  offset after its piece starts. Each stage below has its own.
* ``handed``: the same sample on the handler's playback clock (the pieces ``emit()`` gives FastRTC, after
  our queue and resampling to 48 kHz). The sample is found by its position in the stream, not by
  listening again, so every stage points at the very same sample; the idle silence the handler sends
  between replies (:mod:`speechlm_demo.rtc_idle`) takes its place on the clocks but is skipped when the
  reply's position is mapped into the stream FastRTC got.
* ``paced``: the same sample on the playback clock of the 20 ms frames FastRTC's output track gives aiortc
  (FastRTC's framing and real-time pacing).
* ``heard``: the peer's first audible instant after ``true_end`` on its own playback clock (Opus, RTP over
  loopback, the peer's 4-frame jitter buffer and decoder): found by listening, since Opus changes samples.

Shares, each the step between two consecutive stamps, so each is >= 0 when the stages are causal and
they add up to ``webrtc_v2v_ms`` (``heard - true_end``): ``inbound_ms`` (true_end -> arrived),
``server_ms`` (arrived -> released: turn detection and the engine), ``handler_ms``, ``fastrtc_ms``,
``client_ms``; ``outbound_ms`` is the last three together.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio import to_mono_float32
from ..engines.base import AudioOut, Event, Interrupt, SessionOptions, TurnEnd
from ..engines.registry import EngineRegistry
from ..measure.record import TurnRecord
from ..rtc import EngineStreamHandler
from ..timeline import Timeline
from .rtc_peer import RATE, PeerLog, Stage, frame_pcm

log = logging.getLogger(__name__)

SHARE_NAMES = ("inbound_ms", "server_ms", "handler_ms", "fastrtc_ms", "client_ms")
# the engine's own stages (from its timeline), reported for both paths: where the engine itself runs slower
ENGINE_STAGES = ("turn_detect_ms", "asr_ms", "llm_ttft_ms", "llm_first_sentence_ms", "tts_first_audio_ms")


@dataclass
class Probe:
    """What the server side saw of one connection (the handler and FastRTC's track write, the benchmark reads)."""

    inputs: list[tuple[float, np.ndarray]] = field(default_factory=list)  # (time, 48 kHz mono) of input frames
    engine: Stage = field(default_factory=Stage)  # reply audio as the session emitted it
    handed: Stage = field(default_factory=Stage)  # audio emit() gave FastRTC
    paced: Stage = field(default_factory=Stage)  # frames FastRTC's track gave aiortc
    timelines: list[Timeline] = field(default_factory=list)
    interrupted: bool = False

    def clear(self) -> None:
        """Forget the previous connection."""
        self.inputs, self.timelines, self.interrupted = [], [], False
        self.engine, self.handed, self.paced = Stage(), Stage(), Stage()


class ProbedHandler(EngineStreamHandler):
    """The app's handler, unchanged, with a :class:`Probe` timing its input, its output and its turns."""

    def __init__(self, registry: EngineRegistry, engine_id: str, probe: Probe, options: SessionOptions | None = None) -> None:
        super().__init__(registry, engine_id, ui_args=False, options=options)
        self.probe = probe

    def copy(self) -> ProbedHandler:
        """A fresh handler per connection, sharing the probe."""
        return ProbedHandler(self.registry, str(self.engine_id), self.probe, self.options)

    async def receive(self, frame: tuple[int, np.ndarray]) -> None:
        """Keep the frame, then handle it as the app does."""
        self.probe.inputs.append((time.monotonic(), np.array(frame[1])))  # a copy: the frame's buffer is reused
        await super().receive(frame)

    async def emit(self) -> Any:
        """Hand the next item to FastRTC as the app does, timing audio (idle silence marked as such)."""
        item, filler = await self.next_output()
        if isinstance(item, tuple):
            self.probe.handed.add(time.monotonic(), item[1], item[0], filler=filler)
        return item

    def _emit_threadsafe(self, event: Event) -> None:
        if isinstance(event, AudioOut) and len(event.pcm):
            self.probe.engine.add(time.monotonic(), event.pcm, event.sample_rate)
        elif isinstance(event, Interrupt):
            self.probe.interrupted = True  # flushed audio: stream positions no longer line up
        super()._emit_threadsafe(event)

    def _after_close(self, event: Event) -> None:
        """The peer hangs up once it hears the reply, which the engine may still be generating: the app drops a
        turn ending for nobody, but its timeline holds the engine's stages of this run."""
        record = self._observer.observe(event) if self._observer is not None else None
        if isinstance(event, TurnEnd) and record is not None:
            self.probe.timelines.append(record.timeline)

    def _on_event(self, event: Event, record: TurnRecord | None = None) -> None:
        if isinstance(event, TurnEnd) and record is not None:
            self.probe.timelines.append(record.timeline)
        super()._on_event(event, record)

    async def start_up(self) -> None:
        """Open the session as the app does; every stage hears with the engine's threshold, as the observer."""
        await super().start_up()
        if self._observer is not None:
            for stage in (self.probe.engine, self.probe.handed, self.probe.paced):
                stage.audible_dbfs = self._observer.audible_dbfs


def trace_fastrtc(probe: Probe) -> Callable[[], None]:
    """Time every frame FastRTC's output track hands aiortc (wraps ``AudioCallback.recv`` in this process);
    returns the function that undoes it."""
    from fastrtc.tracks import AudioCallback

    original = AudioCallback.recv

    async def recv(self: Any) -> Any:
        frame = await original(self)
        if frame is not None and hasattr(frame, "to_ndarray"):
            start_s = float(frame.pts * frame.time_base) if frame.pts is not None else None
            probe.paced.add(time.monotonic(), frame_pcm(frame), frame.sample_rate, start_s)
        return frame

    AudioCallback.recv = recv
    return lambda: setattr(AudioCallback, "recv", original)


def arrival_of(inputs: list[tuple[float, np.ndarray]], clip: np.ndarray, position: int) -> float | None:
    """When the handler received the frame holding sample ``position`` of the sent ``clip`` (48 kHz),
    the received stream aligned with the clip by cross-correlation."""
    if not inputs:
        return None
    frames = [to_mono_float32(pcm) for _, pcm in inputs]
    received = np.concatenate(frames)
    size = 1 << int(np.ceil(np.log2(len(received) + len(clip))))
    correlation = np.fft.irfft(np.fft.rfft(received, size) * np.conj(np.fft.rfft(clip, size)), size)
    lag = int(np.argmax(correlation))
    lag = lag - size if lag > size // 2 else lag  # received[i + lag] == clip[i]
    end = 0
    for (t, _), pcm in zip(inputs, frames, strict=True):
        end += len(pcm)
        if end > position + lag:
            return t
    return None


def split(probe: Probe, peer: PeerLog, clip: np.ndarray, true_end_s: float) -> dict[str, float | None]:
    """The stamps of one WebRTC turn (see the module's docstring), as the total and its shares in ms."""
    true_end = peer.started + true_end_s
    arrived = arrival_of(probe.inputs, clip, int(true_end_s * RATE))
    reply = probe.engine.first_audible(true_end)
    released = handed = paced = None
    if reply is not None:
        released, stream_s = reply
        position = None if probe.interrupted else probe.handed.stream_position(stream_s)
        if position is not None:  # the same sample in the stream FastRTC got, idle silence counted
            handed = probe.handed.playback_instant(position)
            paced = probe.paced.playback_instant(position)
    heard_at = peer.heard.first_audible(true_end)
    heard = heard_at[0] if heard_at else None
    stamps = [true_end, arrived, released, handed, paced, heard]
    row: dict[str, float | None] = {"webrtc_v2v_ms": _ms(heard, true_end)}
    row |= {name: _ms(later, earlier) for name, earlier, later in zip(SHARE_NAMES, stamps[:-1], stamps[1:], strict=True)}
    row["outbound_ms"] = _ms(heard, released)
    timeline = next((t for t in probe.timelines if t.marks.get("first_audio_out", 0) > true_end), None)
    observed = timeline.marks["first_audio_out"] if timeline is not None else None
    row["observer_gap_ms"] = _ms(released, observed)  # our replay of the observer's clock against its own mark
    metrics = timeline.metrics() if timeline is not None else {}
    row |= {f"webrtc_{name}": metrics.get(name) for name in ENGINE_STAGES}
    last_sent = max((t for t, level in peer.sent if level > -60.0 and t <= true_end + 0.04), default=None)
    row["last_audible_sent_to_heard_ms"] = _ms(heard, last_sent)
    return row


def _ms(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round((later - earlier) * 1000, 1)

