"""Transport check: an aiortc peer sends a WAV to the app's ``/rtc/webrtc/offer`` route and listens.

Runs inside a loopback-only network namespace (see :mod:`tests.support.netns`); prints one JSON line.
Usage: python -m tests.support.rtc_check --wav FILE --speech-end S --engine ID [--listen S]
"""

from __future__ import annotations

import argparse
import asyncio
import json

import numpy as np

from speechlm_demo.audio import read_audio
from speechlm_demo.benchmarks.rtc_peer import RATE, keep_ice_on_loopback, talk
from tests.support.app_process import running_app

LOUD_DBFS = -45.0


async def exchange(url: str, clip: np.ndarray, speech_end_s: float, listen_s: float) -> dict:
    peer = await talk(url + "/rtc/webrtc/offer", clip, listen_s=listen_s)
    heard = [(unit.played.start - peer.started, unit.level) for unit in peer.heard.units]  # (s since the clip started, dBFS)
    loud = [t for t, level in heard if level > LOUD_DBFS]
    first = next((t for t in loud if t > speech_end_s), None)
    return {
        "frames_received": len(heard),
        "frames_before_reply": sum(1 for t, _ in heard if first is not None and t < first),
        "frames_after_reply": sum(1 for t, _ in heard if loud and t > loud[-1]),
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
    keep_ice_on_loopback()
    clip, _ = read_audio(args.wav, RATE)
    with running_app(args.engine, catalog=args.catalog) as url:
        result = asyncio.run(exchange(url, clip, args.speech_end, args.listen))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
