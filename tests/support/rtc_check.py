"""Transport check: an aiortc peer sends a WAV to the app's ``/rtc/webrtc/offer`` route and listens.

Runs inside a loopback-only network namespace (see :mod:`tests.support.netns`); prints one JSON line.
Usage: python -m tests.support.rtc_check --wav FILE --speech-end S --engine ID [--listen S]
"""

from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import time
import uuid

import av
import httpx
import numpy as np
from aiortc import MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCSessionDescription

from speechlm_demo.audio import read_audio, rms_dbfs
from tests.support.app_process import running_app
from tests.support.loopback import offer_loopback_only

RATE = 48_000
FRAME = RATE // 50  # 20 ms


class WavTrack(MediaStreamTrack):
    """Plays a mono clip in real-time 20 ms frames, then silence."""

    kind = "audio"

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        self.samples = (np.clip(samples, -1, 1) * 32767).astype(np.int16)
        self.sent = 0
        self.started: float | None = None

    async def recv(self) -> av.AudioFrame:
        if self.started is None:
            self.started = time.monotonic()
        due = self.started + self.sent / RATE
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        chunk = self.samples[self.sent : self.sent + FRAME]
        if len(chunk) < FRAME:
            chunk = np.concatenate([chunk, np.zeros(FRAME - len(chunk), np.int16)])
        frame = av.AudioFrame.from_ndarray(chunk.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = RATE
        frame.pts = self.sent
        frame.time_base = fractions.Fraction(1, RATE)
        self.sent += FRAME
        return frame


async def exchange(url: str, clip: np.ndarray, speech_end_s: float, listen_s: float) -> dict:
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    pc.createDataChannel("text")
    track = WavTrack(clip)
    pc.addTrack(track)
    heard: list[tuple[float, float]] = []  # (seconds since clip start, dBFS)

    @pc.on("track")
    def on_track(remote: MediaStreamTrack) -> None:
        async def read() -> None:
            while True:
                try:
                    frame = await remote.recv()
                except Exception:  # noqa: BLE001 - track ended
                    return
                pcm = frame.to_ndarray().astype(np.float32).ravel() / 32768.0
                if track.started is not None:
                    heard.append((time.monotonic() - track.started, rms_dbfs(pcm)))

        asyncio.ensure_future(read())

    offer = await pc.createOffer()
    await pc.setLocalDescription(offer)
    body = {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type, "webrtc_id": uuid.uuid4().hex}
    async with httpx.AsyncClient(timeout=20) as client:
        response = await client.post(url + "/rtc/webrtc/offer", json=body)
    answer = response.json()
    await pc.setRemoteDescription(RTCSessionDescription(sdp=answer["sdp"], type=answer["type"]))
    await asyncio.sleep(listen_s)
    await pc.close()
    loud = [t for t, level in heard if level > -45.0]
    first = next((t for t in loud if t > speech_end_s), None)
    return {
        "frames_received": len(heard),
        "loud_frames": len(loud),
        "first_reply_s": first,
        "voice_to_voice_ms": None if first is None else round((first - speech_end_s) * 1000),
        "max_dbfs": max((level for _, level in heard), default=-120.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--speech-end", type=float, required=True)
    parser.add_argument("--engine", default="echo")
    parser.add_argument("--catalog")
    parser.add_argument("--listen", type=float, default=8.0)
    args = parser.parse_args()
    offer_loopback_only()
    clip, _ = read_audio(args.wav, RATE)
    with running_app(args.engine, catalog=args.catalog) as url:
        result = asyncio.run(exchange(url, clip, args.speech_end, args.listen))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
