"""An aiortc peer in the part a browser plays: it speaks a clip into a WebRTC route and logs what it hears.

Used by ``bench --via webrtc`` (:mod:`speechlm_demo.benchmarks.webrtc`, in a process of its own, as a browser
is: :class:`PeerProcess`) and by the transport tests. The clip goes out as a microphone delivers it: 48 kHz 20 ms frames, each once its last sample has been
"spoken" (as :func:`speechlm_demo.measure.feeding.run_prompt` feeds it in process), then silence. The
peer's own receive buffer is aiortc's (4 frames), not the server's setting: it stands in for a browser.
"""

from __future__ import annotations

import asyncio
import fractions
import multiprocessing
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Self

import av
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from ..audio import SILENT_DBFS, audible_span, rms_dbfs, to_mono_float32
from ..measure.playback import PlaybackClock, Played
from ..rtc_jitter import aiortc_default_buffer

RATE = 48_000
FRAME = RATE // 50  # 20 ms, what browsers send


def keep_ice_on_loopback() -> None:
    """Make aioice (in this process) offer exactly one host candidate: 127.0.0.1."""
    import aioice.ice

    aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"] if use_ipv4 else []


def frame_pcm(frame: av.AudioFrame) -> np.ndarray:
    """Mono float32 in [-1, 1] of an int16 aiortc / FastRTC frame (packed or planar, any channels)."""
    channels = len(frame.layout.channels)
    raw = frame.to_ndarray().astype(np.float32) / 32768.0
    if frame.format.is_planar:
        return raw.reshape(channels, -1).mean(axis=0)
    return raw.reshape(-1, channels).mean(axis=1)


@dataclass
class Unit:
    """A piece of audio a stage let go of: where it starts in the stage's stream, and where it plays."""

    start_s: float  # seconds into the stage's stream
    played: Played  # on the stage's playback clock
    level: float  # dBFS of the whole piece
    filler: bool = False  # idle silence the server added between replies (not reply audio)


class Stage:
    """The pieces one stage let go of, each on the stage's own playback clock (the one placement,
    :class:`~speechlm_demo.measure.playback.PlaybackClock`), with its position in the stage's stream.
    :meth:`add` only keeps the piece (it runs inside the path being timed); it is placed when read."""

    def __init__(self, audible_dbfs: float = SILENT_DBFS) -> None:
        self.audible_dbfs = audible_dbfs
        self._kept: list[tuple[float, np.ndarray, int, float | None, bool]] = []
        self._units: list[Unit] = []
        self._clock: PlaybackClock | None = None
        self._position_s = 0.0

    def add(self, t: float, pcm: np.ndarray, rate: int, start_s: float | None = None, *, filler: bool = False) -> None:
        """A piece (any PCM layout) handed on at ``t``; ``start_s``: its place in the stream (default: after
        the last); ``filler``: idle silence, which takes its place in the stream but is no reply audio."""
        self._kept.append((t, pcm, rate, start_s, filler))

    @property
    def units(self) -> list[Unit]:
        """Every piece so far, placed."""
        if self._clock is None:
            self._clock = PlaybackClock(self.audible_dbfs)
        kept, self._kept = self._kept, []
        for t, raw, rate, start_s, filler in kept:
            pcm = to_mono_float32(raw)
            start = self._position_s if start_s is None else start_s
            self._units.append(Unit(start, self._clock.place(pcm, rate, t), rms_dbfs(pcm), filler))
            self._position_s = start + len(pcm) / rate
        return self._units

    def first_audible(self, after: float) -> tuple[float, float] | None:
        """(playback instant, stream position) of the first audible sample playing after ``after``."""
        for unit in self.units:
            if unit.played.audible is not None and unit.played.audible[0] > after:
                return unit.played.audible[0], unit.start_s + unit.played.audible[0] - unit.played.start
        return None

    def stream_position(self, reply_s: float) -> float | None:
        """Where the sample ``reply_s`` seconds into the reply audio (what the engine emitted, fillers
        left out) lies in this stage's stream (fillers counted)."""
        before = 0.0  # reply audio in the units so far
        for unit in self.units:
            if unit.filler:
                continue
            length = unit.played.end - unit.played.start
            if reply_s < before + length - 1e-9:
                return unit.start_s + max(0.0, reply_s - before)
            before += length
        return None

    def playback_instant(self, stream_s: float) -> float | None:
        """When the sample ``stream_s`` seconds into the stream plays on this stage's playback clock."""
        for unit in self.units:
            if unit.start_s - 1e-9 <= stream_s < unit.start_s + unit.played.end - unit.played.start - 1e-9:
                return unit.played.start + stream_s - unit.start_s
        return None


class PromptTrack(MediaStreamTrack):
    """Sends a clip in real-time 20 ms frames, each once its last sample has been spoken, then silence;
    remembers when each clip frame left (``sent``: time, dBFS)."""

    kind = "audio"

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        self.samples = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        self.position = 0
        self.started: float | None = None
        self.sent: list[tuple[float, float]] = []

    async def recv(self) -> av.AudioFrame:
        if self.started is None:
            self.started = time.monotonic()
        await asyncio.sleep(max(0.0, self.started + (self.position + FRAME) / RATE - time.monotonic()))
        chunk = self.samples[self.position : self.position + FRAME]
        if len(chunk) == FRAME:
            self.sent.append((time.monotonic(), rms_dbfs(chunk.astype(np.float32) / 32768)))
        else:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate, frame.pts, frame.time_base = RATE, self.position, fractions.Fraction(1, RATE)
        self.position += FRAME
        return frame


@dataclass
class PeerLog:
    """What the peer did: when the clip started, the frames it sent and every frame it heard."""

    started: float
    sent: list[tuple[float, float]]
    heard: Stage = field(default_factory=Stage)


async def talk(url: str, clip: np.ndarray, *, listen_s: float, until_audible_after_s: float | None = None) -> PeerLog:
    """Offer to ``url`` (a FastRTC stream's ``.../webrtc/offer`` route), send ``clip`` (48 kHz mono) and
    listen for ``listen_s`` seconds, or until an audible frame is heard once ``until_audible_after_s``
    seconds of the clip have been spoken. Times are ``time.monotonic()``; the connection is always closed."""
    import httpx

    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    track = PromptTrack(clip)
    log = PeerLog(0.0, track.sent)
    done = asyncio.Event()
    readers: list[asyncio.Task[None]] = []
    try:
        pc.createDataChannel("text")
        with aiortc_default_buffer():  # a browser stand-in: aiortc's own 80 ms, not the server's setting
            pc.addTrack(track)

        @pc.on("track")
        def on_track(remote: Any) -> None:
            async def read() -> None:
                while True:
                    try:
                        frame = await remote.recv()
                    except Exception:  # noqa: BLE001 - the track ended
                        return
                    now, pcm = time.monotonic(), frame_pcm(frame)
                    log.heard.add(now, pcm, frame.sample_rate)
                    after = until_audible_after_s is not None and track.started is not None and now > track.started + until_audible_after_s
                    if after and audible_span(pcm, frame.sample_rate) is not None:
                        done.set()

            readers.append(asyncio.ensure_future(read()))

        await pc.setLocalDescription(await pc.createOffer())
        body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, "webrtc_id": uuid.uuid4().hex}
        async with httpx.AsyncClient(timeout=20) as client:
            response = await client.post(url, json=body)
        response.raise_for_status()
        answer = response.json()
        await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
        try:
            await asyncio.wait_for(done.wait(), listen_s)
        except TimeoutError:
            pass
    finally:
        await pc.close()
        for reader in readers:
            reader.cancel()
    log.started = track.started or 0.0
    log.heard.units  # noqa: B018 - placed here: only the placed pieces travel back from the peer's process
    return log


def _talk_here(url: str, clip: np.ndarray, options: dict[str, Any]) -> PeerLog:
    keep_ice_on_loopback()
    return asyncio.run(talk(url, clip, **options))


class PeerProcess:
    """:func:`talk` in a process of its own (started once, used for every prompt): a browser does not share
    the server's interpreter, so the peer must not hold the server's GIL or be held up by it. Its times are
    ``time.monotonic()`` too, one clock for every process on the machine (Linux ``CLOCK_MONOTONIC``)."""

    def __enter__(self) -> Self:
        self._pool = multiprocessing.get_context("spawn").Pool(1)
        return self

    def talk(self, url: str, clip: np.ndarray, *, listen_s: float, until_audible_after_s: float | None = None) -> PeerLog:
        """:func:`talk`, run in the peer's process; waits for it (``TimeoutError`` if it hangs)."""
        options = {"listen_s": listen_s, "until_audible_after_s": until_audible_after_s}
        pending = self._pool.apply_async(_talk_here, (url, clip, options))
        try:
            return pending.get(timeout=listen_s + 60)
        except multiprocessing.TimeoutError:
            raise TimeoutError(f"the WebRTC peer did not finish within {listen_s + 60:g} s") from None

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        """Stop the peer's process: at once after an error (a hung peer is killed, not waited for)."""
        if kind is None:
            self._pool.close()
        else:
            self._pool.terminate()
        self._pool.join()
