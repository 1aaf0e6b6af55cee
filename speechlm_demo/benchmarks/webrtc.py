"""``bench --via webrtc``: the same prompts through the app's WebRTC routes, next to the in-process path.

The app's FastRTC stream (:func:`speechlm_demo.server.mount_rtc`, what the app mounts at ``/rtc``) is
served by uvicorn on 127.0.0.1 inside this process, and an aiortc peer
(:mod:`speechlm_demo.benchmarks.rtc_peer`, the part a browser plays) speaks each prompt in real time and
listens, from a process of its own. ICE is kept to 127.0.0.1: no network but loopback is involved. Each
prompt runs in process (:func:`speechlm_demo.benchmarks.latency.benchmark`, with its premature cuts,
kinds and judges) and over WebRTC, a run or two apart (:func:`schedule`: never twice in a row, so no path finds
the prompt's own tokens in llama.cpp's cache; half the prompts led by each path), so the
transport's share is the difference of two figures taken in the same minute of the same machine. Where the WebRTC time goes is split by
:mod:`speechlm_demo.benchmarks.webrtc_stages`.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Self

import numpy as np

from ..audio import resample
from ..engines.base import Engine, SessionOptions
from ..engines.registry import EngineRegistry
from ..measure.feeding import LEAD_SILENCE_S, Prompt
from .latency import TurnResult, benchmark
from .rtc_peer import RATE, PeerProcess, keep_ice_on_loopback
from .webrtc_stages import ENGINE_STAGES, SHARE_NAMES, Probe, ProbedHandler, split, trace_fastrtc

log = logging.getLogger(__name__)

V2V = ("in_process_v2v_ms", "webrtc_v2v_ms")  # the two paths' voice-to-voice, compared run by run
FIGURES = (*V2V, *SHARE_NAMES, "outbound_ms")
# the engine's stages on each path, side by side (a slower engine over WebRTC shows in which stage)
STAGE_FIGURES = tuple(f"{path}_{name}" for name in ENGINE_STAGES for path in ("in_process", "webrtc"))


class LoopbackServer:
    """uvicorn serving the app's ``/rtc`` routes on 127.0.0.1 in a background thread."""

    def __init__(self, handler: Any) -> None:
        import uvicorn
        from fastapi import FastAPI

        from ..server import RTC_PREFIX, mount_rtc

        app = FastAPI()
        mount_rtc(app, handler)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.offer_url = f"http://127.0.0.1:{self.port}{RTC_PREFIX}/webrtc/offer"
        self._server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, name="bench-rtc-server", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                self.__exit__()
                raise RuntimeError("the benchmark's WebRTC server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(10)

    @property
    def running(self) -> bool:
        """Whether the server thread is still alive."""
        return self._thread.is_alive()


def via_webrtc(
    server: LoopbackServer, peer_process: PeerProcess, probe: Probe, prompt: Prompt, rate: int, timeout_s: float
) -> dict[str, float | None]:
    """One prompt over WebRTC: the peer's voice-to-voice and where its time went."""
    probe.clear()
    lead = np.zeros(int(LEAD_SILENCE_S * 2 * RATE), np.float32)  # 1 s: the session opens while it plays
    clip = np.concatenate([lead, resample(prompt.audio, rate, RATE)])
    true_end_s = len(lead) / RATE + prompt.speech_end_s
    peer = peer_process.talk(server.offer_url, clip, listen_s=timeout_s + len(clip) / RATE, until_audible_after_s=true_end_s)
    deadline = time.monotonic() + 3.0  # the turn's timeline comes when its reply has finished
    while peer.heard and not probe.timelines and time.monotonic() < deadline:
        time.sleep(0.05)
    return split(probe, peer, clip, true_end_s)


def schedule(count: int, flip: bool = False) -> list[tuple[str, int]]:
    """The order of one repeat's runs, as (path, prompt index), ``"process"`` or ``"webrtc"``: each prompt on
    both paths, never twice in a row, its second run at most two runs after its first, and half the prompts
    led by each path (``P0 W1 W0 P1``, ``P2 W3 W2 P3``, ...; an odd count ends ``P W P W P W`` over three
    prompts; ``flip`` swaps the paths). A prompt run twice in a row found llama.cpp's prompt cache holding its
    every token, which favoured the second path by ~60 ms of time to first token (a user's next turn shares
    only the system prompt with the last one)."""
    lead, other = ("webrtc", "process") if flip else ("process", "webrtc")
    if count == 1:
        return [(lead, 0), (other, 0)]
    steps: list[tuple[str, int]] = []
    paired = count if count % 2 == 0 else count - 3
    for a in range(0, paired, 2):
        steps += [(lead, a), (other, a + 1), (other, a), (lead, a + 1)]
    if paired < count:
        x, y, z = paired, paired + 1, paired + 2
        steps += [(lead, x), (other, y), (lead, z), (other, x), (lead, y), (other, z)]
    return steps


def compare(
    engine: Engine,
    registry: EngineRegistry,
    prompts: list[Prompt],
    *,
    repeat: int = 1,
    tail_s: float = 4.0,
    timeout_s: float = 30.0,
    progress: Any = None,
    judge: Callable[..., dict[str, Any]] | None = None,
    options: SessionOptions | None = None,
) -> tuple[list[TurnResult], list[dict[str, Any]]]:
    """Every prompt in process (:func:`~.latency.benchmark`: its turns, cuts and judges) and over WebRTC, in the
    order of :func:`schedule` (half the prompts led by each path; swapped from repeat to repeat), ``repeat`` times; the
    in-process turns and one WebRTC row per turn, in the prompts' order. ``options`` (a seed) go to both
    paths' sessions, so both sample the same reply from the same words. The server and the peer's process are
    stopped and FastRTC's track restored whatever happens."""
    keep_ice_on_loopback()
    rate = engine.entry.sample_rates.input
    probe = Probe()
    turns: list[TurnResult] = []
    rows: list[dict[str, Any]] = []
    untrace = trace_fastrtc(probe)
    try:
        with LoopbackServer(ProbedHandler(registry, engine.id, probe, options)) as server, PeerProcess() as peer_process:
            for r in range(repeat):
                done: dict[int, TurnResult] = {}
                row_of: list[dict[str, Any]] = [
                    {"prompt": prompt.path.name, "kind": prompt.kind, "repeat": r} for prompt in prompts
                ]
                for path, i in schedule(len(prompts), flip=r % 2 == 1):
                    row_of[i].setdefault("webrtc_first", path == "webrtc")
                    if path == "webrtc":
                        row_of[i] |= via_webrtc(server, peer_process, probe, prompts[i], rate, timeout_s)
                    else:
                        (done[i],) = benchmark(engine, [prompts[i]], tail_s=tail_s, timeout_s=timeout_s, judge=judge, options=options)
                    if progress is not None and (path == "webrtc") != row_of[i]["webrtc_first"]:
                        progress.update(1)  # the prompt's second run
                for i, turn in sorted(done.items()):
                    turn.repeat = r
                    turns.append(turn)
                    row_of[i]["in_process_v2v_ms"] = turn.metrics.get("voice_to_voice_ref_ms") if turn.status == "ok" else None
                    row_of[i] |= {f"in_process_{name}": turn.metrics.get(name) for name in ENGINE_STAGES}
                rows += row_of
    finally:
        untrace()
    return turns, rows


def summarise_shares(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians of each figure, and the transport's share: (WebRTC - in process) per prompt, the median of
    the prompts run in process first and that of those run over WebRTC first, averaged. The two
    voice-to-voice medians are over the same runs, those answered on both paths (a run answered on one
    path only, say a failed in-process turn, is in its row, not in either median), so they can be compared."""
    summary: dict[str, Any] = {}
    both = [row for row in rows if all(row.get(name) is not None for name in V2V)]
    for name in (*FIGURES, "last_audible_sent_to_heard_ms", *STAGE_FIGURES):
        values = [row[name] for row in (both if name in V2V else rows) if row.get(name) is not None]
        if values:
            summary[name] = {"p50": round(float(np.median(values)), 1), "n": len(values)}
    paired = {first: [row["webrtc_v2v_ms"] - row["in_process_v2v_ms"] for row in both if row.get("webrtc_first", False) is first]
              for first in (False, True)}
    medians = [float(np.median(values)) for values in paired.values() if values]
    if medians:  # what runs second may be quicker (warm caches): the two orders' medians weigh the same
        summary["transport_share_ms"] = {"p50": round(float(np.mean(medians)), 1), "n": sum(map(len, paired.values()))}
        summary["transport_share_ms"]["by_order"] = {
            "in_process_first": round(float(np.median(paired[False])), 1) if paired[False] else None,
            "webrtc_first": round(float(np.median(paired[True])), 1) if paired[True] else None,
        }
    return summary


def format_shares(webrtc: dict[str, Any]) -> str:
    """A small table: the medians, then one line per prompt."""
    lines = ["WebRTC over loopback (each prompt in process and through /rtc with an aiortc peer, in schedule() order):", f"{'figure':<32}{'p50':>9}{'n':>5}"]
    for name, stats in webrtc["summary"].items():
        lines.append(f"{name:<32}{stats['p50']:>9.0f}{stats['n']:>5}")
    for row in webrtc["rows"]:
        figures = "  ".join(f"{k.removesuffix('_ms')}={row[k]:.0f}" for k in FIGURES if row.get(k) is not None)
        lines.append(f"[{row['prompt']} #{row['repeat']}] {figures}")
    return "\n".join(lines)


def plot_values(webrtc: dict[str, Any]) -> dict[str, list[float]]:
    """The WebRTC figures of every row, for the benchmark's box plot (``webrtc:`` before each name)."""
    return {f"webrtc:{name}": [row[name] for row in webrtc["rows"] if row.get(name) is not None] for name in FIGURES}
