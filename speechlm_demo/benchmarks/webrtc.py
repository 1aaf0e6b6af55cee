"""``bench --via webrtc``: the same prompts through the app's WebRTC routes, next to the in-process path.

The app's FastRTC stream (:func:`speechlm_demo.server.mount_rtc`, what the app mounts at ``/rtc``) is
served by uvicorn on 127.0.0.1 inside this process, and an aiortc peer (the part a browser plays) sends
each prompt in real time as 48 kHz 20 ms frames and listens. ICE is kept to 127.0.0.1 (aioice is told to
offer only the loopback address), so no network but loopback is involved. Everything is timed on one
monotonic clock:

* ``true_end``: the client has sent the prompt up to its true end of speech (sidecar ``speech_end_s``);
* ``arrived``: the handler receives the last audible input frame (inbound share: from the client's send);
* ``first_audio_out``: the session releases the first audible reply sample (the server's timeline);
* ``handed_over``: the handler gives FastRTC its first audible reply frame (our queue and resampling);
* ``paced``: FastRTC's output track gives aiortc that frame (FastRTC's framing, resampling and pacing);
* ``heard``: the client's track returns its first audible frame (Opus, RTP over loopback, the client's
  jitter buffer: aiortc holds 4 frames, 80 ms; a browser's adaptive buffer and audio output take theirs).

Each prompt runs in process first, then over WebRTC, prompt by prompt, so the transport's share is the
difference of two figures taken in the same minute of the same machine.
"""

from __future__ import annotations

import asyncio
import fractions
import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..audio import SILENT_DBFS, resample, rms_dbfs, to_mono_float32
from ..engines.base import Engine, Event, TurnEnd
from ..engines.registry import EngineRegistry
from ..measure.feeding import LEAD_SILENCE_S, Prompt, run_prompt
from ..measure.record import TurnRecord
from ..rtc import EngineStreamHandler
from ..rtc_jitter import aiortc_default_buffer
from ..timeline import Timeline

log = logging.getLogger(__name__)

RATE = 48_000
FRAME = RATE // 50  # 20 ms, what browsers send
AUDIBLE_DBFS = SILENT_DBFS  # a frame louder than this is "audible" on either side (as first_audio_out counts)
SHARES = ("in_process_v2v_ms", "webrtc_v2v_ms", "inbound_ms", "server_ms", "handler_ms", "fastrtc_ms", "client_ms", "outbound_ms")


@dataclass
class Probe:
    """What the server side saw of one connection (the handler writes, the benchmark reads)."""

    arrivals: list[tuple[float, float]] = field(default_factory=list)  # (time, dBFS) of input frames
    handovers: list[tuple[float, float]] = field(default_factory=list)  # (time, dBFS) of audio given to FastRTC
    paced: list[tuple[float, float]] = field(default_factory=list)  # (time, dBFS) of frames FastRTC gives aiortc
    timelines: list[Timeline] = field(default_factory=list)

    def clear(self) -> None:
        """Forget the previous connection."""
        self.arrivals, self.handovers, self.paced, self.timelines = [], [], [], []


class ProbedHandler(EngineStreamHandler):
    """The app's handler, unchanged, with a :class:`Probe` timing its input, its output and its turns."""

    def __init__(self, registry: EngineRegistry, engine_id: str, probe: Probe) -> None:
        super().__init__(registry, engine_id, ui_args=False)
        self.probe = probe

    def copy(self) -> ProbedHandler:
        """A fresh handler per connection, sharing the probe."""
        return ProbedHandler(self.registry, str(self.engine_id), self.probe)

    async def receive(self, frame: tuple[int, np.ndarray]) -> None:
        """Time the frame, then handle it as the app does."""
        self.probe.arrivals.append((time.monotonic(), rms_dbfs(to_mono_float32(frame[1]))))
        await super().receive(frame)

    async def emit(self) -> Any:
        """Hand the next item to FastRTC as the app does, timing audio."""
        item = await super().emit()
        if isinstance(item, tuple):
            self.probe.handovers.append((time.monotonic(), rms_dbfs(to_mono_float32(item[1]))))
        return item

    def _on_event(self, event: Event, record: TurnRecord | None = None) -> None:
        if isinstance(event, TurnEnd) and record is not None:
            self.probe.timelines.append(record.timeline)  # the one observer's: first_audio_out as it will play
        super()._on_event(event, record)


def trace_fastrtc(probe: Probe) -> Any:
    """Time every frame FastRTC's output track hands aiortc (wraps ``AudioCallback.recv`` for this benchmark
    process); returns the function that undoes it."""
    from fastrtc.tracks import AudioCallback

    original = AudioCallback.recv

    async def recv(self: Any) -> Any:
        frame = await original(self)
        if hasattr(frame, "to_ndarray"):
            probe.paced.append((time.monotonic(), rms_dbfs(frame.to_ndarray().astype(np.float32).ravel() / 32768.0)))
        return frame

    AudioCallback.recv = recv
    return lambda: setattr(AudioCallback, "recv", original)


def keep_ice_on_loopback() -> None:
    """Make aioice (both peers live in this process) offer exactly one host candidate: 127.0.0.1."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


class LoopbackServer:
    """uvicorn serving the app's ``/rtc`` routes on 127.0.0.1 in a background thread."""

    def __init__(self, handler: EngineStreamHandler) -> None:
        import uvicorn
        from fastapi import FastAPI

        from ..server import RTC_PREFIX, mount_rtc

        app = FastAPI()
        mount_rtc(app, handler)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}{RTC_PREFIX}"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, name="bench-rtc-server", daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the benchmark's WebRTC server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)


def _track_class() -> type:
    import av
    from aiortc import MediaStreamTrack

    class PromptTrack(MediaStreamTrack):
        """Sends a clip in real-time 20 ms frames, each once its last sample has been "spoken" (as a microphone
        delivers it, and as :func:`speechlm_demo.measure.feeding.run_prompt` feeds it), then silence; remembers
        when each frame left."""

        kind = "audio"

        def __init__(self, samples: np.ndarray) -> None:
            super().__init__()
            self.samples = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
            self.sent = 0
            self.started: float | None = None
            self.sent_at: list[tuple[float, float]] = []  # (time, dBFS) of each clip frame

        async def recv(self) -> av.AudioFrame:
            if self.started is None:
                self.started = time.monotonic()
            await asyncio.sleep(max(0.0, self.started + (self.sent + FRAME) / RATE - time.monotonic()))
            chunk = self.samples[self.sent : self.sent + FRAME]
            if len(chunk) == FRAME:
                self.sent_at.append((time.monotonic(), rms_dbfs(chunk.astype(np.float32) / 32768)))
            else:
                chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
            frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = RATE, self.sent, fractions.Fraction(1, RATE)
            self.sent += FRAME
            return frame

    return PromptTrack


async def exchange(url: str, clip: np.ndarray, true_end_s: float, timeout_s: float) -> dict[str, Any]:
    """Send ``clip`` (48 kHz) to ``url``'s offer route; listen until the first audible frame after the true
    end of speech (``true_end_s`` into the clip) or ``timeout_s``. Times are ``time.monotonic()``."""
    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("text")
    track = _track_class()(clip)
    with aiortc_default_buffer():  # the client stands in for a browser: aiortc's own 80 ms, not the server's
        pc.addTrack(track)
    heard: list[tuple[float, float]] = []
    answered = asyncio.Event()

    @pc.on("track")
    def on_track(remote: Any) -> None:
        async def read() -> None:
            while True:
                try:
                    frame = await remote.recv()
                except Exception:  # noqa: BLE001 - the track ended
                    return
                level = rms_dbfs(frame.to_ndarray().astype(np.float32).ravel() / 32768.0)
                now = time.monotonic()
                heard.append((now, level))
                if track.started is not None and level > AUDIBLE_DBFS and now > track.started + true_end_s:
                    answered.set()

        asyncio.ensure_future(read())

    await pc.setLocalDescription(await pc.createOffer())
    body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, "webrtc_id": uuid.uuid4().hex}
    async with httpx.AsyncClient(timeout=20) as client:
        answer = (await client.post(url + "/webrtc/offer", json=body)).json()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    try:
        await asyncio.wait_for(answered.wait(), timeout_s + len(clip) / RATE)
    except TimeoutError:
        pass
    await pc.close()
    started = track.started or 0.0
    true_end = started + true_end_s
    first = next((t for t, level in heard if t > true_end and level > AUDIBLE_DBFS), None)
    last_sent = max((t for t, level in track.sent_at if level > AUDIBLE_DBFS and t <= true_end + 0.04), default=None)
    return {"true_end": true_end, "heard": first, "last_audible_sent": last_sent}


def _ms(later: float | None, earlier: float | None) -> float | None:
    return None if later is None or earlier is None else round((later - earlier) * 1000, 1)


def via_webrtc(engine: Engine, server: LoopbackServer, probe: Probe, prompt: Prompt, rate: int, timeout_s: float) -> dict[str, Any]:
    """One prompt over WebRTC: the client's voice-to-voice and where its time went."""
    probe.clear()
    lead = np.zeros(int(LEAD_SILENCE_S * 2 * RATE), np.float32)  # 1 s: the session opens while it plays
    clip = np.concatenate([lead, resample(prompt.audio, rate, RATE)])
    true_end_s = len(lead) / RATE + prompt.speech_end_s
    seen = asyncio.run(exchange(server.url, clip, true_end_s, timeout_s))
    deadline = time.monotonic() + 3.0  # the turn's timeline comes when its reply has finished
    while seen["heard"] and not any("first_audio_out" in t.marks for t in probe.timelines) and time.monotonic() < deadline:
        time.sleep(0.05)
    after = seen["true_end"] - 0.5
    arrived = max((t for t, level in probe.arrivals if level > AUDIBLE_DBFS and after < t), default=None)
    released = next((t.marks["first_audio_out"] for t in probe.timelines if t.marks.get("first_audio_out", 0) > seen["true_end"]), None)
    handed = next((t for t, level in probe.handovers if level > AUDIBLE_DBFS and t > seen["true_end"]), None)
    paced = next((t for t, level in probe.paced if level > AUDIBLE_DBFS and t > seen["true_end"]), None)
    return {
        "webrtc_v2v_ms": _ms(seen["heard"], seen["true_end"]),
        "last_audible_sent_to_heard_ms": _ms(seen["heard"], seen["last_audible_sent"]),
        "inbound_ms": _ms(arrived, seen["last_audible_sent"]),
        "server_ms": _ms(released, seen["true_end"]),
        "handler_ms": _ms(handed, released),
        "fastrtc_ms": _ms(paced, handed),
        "client_ms": _ms(seen["heard"], paced),
        "outbound_ms": _ms(seen["heard"], released),
    }


def compare(
    engine: Engine, registry: EngineRegistry, prompts: list[Prompt], *, repeat: int = 1, tail_s: float = 4.0, timeout_s: float = 30.0, progress: Any = None
) -> dict[str, Any]:
    """Every prompt in process, then over WebRTC, ``repeat`` times; rows and medians of both and the shares."""
    keep_ice_on_loopback()
    rate = engine.entry.sample_rates.input
    probe = Probe()
    rows = []
    untrace = trace_fastrtc(probe)
    with LoopbackServer(ProbedHandler(registry, engine.id, probe)) as server:
        for r in range(repeat):
            for prompt in prompts:
                feed = run_prompt(engine, prompt, rate, tail_s, timeout_s)
                answered = feed.answered
                v2v = answered.timeline.metrics().get("voice_to_voice_ref_ms") if answered is not None else None
                row = {"prompt": prompt.path.name, "kind": prompt.kind, "repeat": r, "in_process_v2v_ms": v2v}
                row |= via_webrtc(engine, server, probe, prompt, rate, timeout_s)
                rows.append(row)
                if progress is not None:
                    progress.update(1)
    untrace()
    return {"engine": engine.id, "rows": rows, "summary": summarise_shares(rows)}


def summarise_shares(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of each figure, and the transport's share: the median of (WebRTC - in process) per prompt."""
    summary: dict[str, Any] = {}
    for name in (*SHARES, "last_audible_sent_to_heard_ms"):
        values = [row[name] for row in rows if row.get(name) is not None]
        if values:
            summary[name] = {"p50": round(float(np.median(values)), 1), "n": len(values)}
    paired = [row["webrtc_v2v_ms"] - row["in_process_v2v_ms"] for row in rows
              if row.get("webrtc_v2v_ms") is not None and row.get("in_process_v2v_ms") is not None]
    if paired:
        summary["transport_share_ms"] = {"p50": round(float(np.median(paired)), 1), "n": len(paired)}
    return summary


def format_shares(doc: dict[str, Any]) -> str:
    """A small table: the medians, then one line per prompt."""
    lines = [f"engine: {doc['engine']} (in process, then WebRTC over loopback, prompt by prompt)", ""]
    for name, stats in doc["summary"].items():
        lines.append(f"{name:<32}{stats['p50']:>9.0f}{stats['n']:>5}")
    lines.append("")
    for row in doc["rows"]:
        figures = "  ".join(f"{k.removesuffix('_ms')}={row[k]:.0f}" for k in SHARES if row.get(k) is not None)
        lines.append(f"[{row['prompt']} #{row['repeat']}] {figures}")
    return "\n".join(lines)
