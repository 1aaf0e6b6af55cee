"""Real-browser check: headless Chromium talks to the app with a WAV as its microphone.

Runs inside a loopback-only network namespace; prints one JSON line with what the page measured.
Usage: python -m tests.support.browser_check --wav FILE --engine ID [--screenshot PNG] [--listen S]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tests.support.app_process import running_app

CHROMIUM = "/usr/bin/chromium"
LOUD_DBFS = -45.0
PROBE_JS = Path(__file__).with_name("page_probe.js")


def chromium_args(wav: str) -> list[str]:
    """Flags: fake microphone from a file, no network chatter, WebRTC over loopback with real IPs."""
    return [
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={wav}",
        "--autoplay-policy=no-user-gesture-required",
        "--allow-loopback-in-peer-connection",
        "--disable-features=WebRtcHideLocalIpsWithMdns",
    ]


@contextlib.contextmanager
def chromium_page(wav: str, init_script: Path, height: int = 860) -> Iterator[Page]:
    """A headless Chromium page whose microphone plays ``wav``, with ``init_script`` run before the app's."""
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=chromium_args(wav))
        try:
            page = browser.new_page(viewport={"width": 1280, "height": height})
            page.add_init_script(path=str(init_script))
            yield page
        finally:
            browser.close()


def analyse(probe: dict) -> dict:
    """Find the end of the user's speech and the reply's onset in the page's level logs (ms)."""
    mic = [t for t, level in probe["mic"] if level > LOUD_DBFS]
    speech_end = None
    if mic:
        speech_end = mic[0]
        for t in mic:
            if t - speech_end > 1000:  # a gap of a second: the clip's speech is over
                break
            speech_end = t
    remote_loud = [t for t, level in probe["remote"] if level > LOUD_DBFS]
    onset = next((t for t in remote_loud if speech_end is not None and t > speech_end), None)
    return {
        "mic_speech_start_ms": mic[0] if mic else None,
        "mic_speech_end_ms": speech_end,
        "reply_onset_ms": onset,
        "reply_loud_ms": 10 * len([t for t in remote_loud if onset is not None and t >= onset]),
        "voice_to_voice_ms": None if onset is None or speech_end is None else round(onset - speech_end),
        "reply_jitter_buffer_ms": jitter_buffer_ms(probe.get("jitter", []), onset),
        "remote_max_dbfs": max((level for _, level in probe["remote"]), default=-120.0),
        "probe_errors": probe["errors"],
    }


def jitter_buffer_ms(samples: list[list[float]], onset: float | None, span_ms: float = 200.0) -> float | None:
    """The receive jitter buffer's mean delay (ms) over the samples it emitted from just before the reply's
    onset to ``span_ms`` after it (WebRTC stats ``jitterBufferDelay`` / ``jitterBufferEmittedCount``)."""
    if onset is None:
        return None
    before = [s for s in samples if s[0] <= onset]
    after = [s for s in samples if s[0] >= onset + span_ms]
    if not before or not after or after[0][2] <= before[-1][2]:
        return None
    return round((after[0][1] - before[-1][1]) / (after[0][2] - before[-1][2]) * 1000, 1)


def start_microphone(page: Page, prefix: str) -> None:
    """Grant the microphone and start the WebRTC stream of the component ``#{prefix}-webrtc``."""
    root = page.locator(f"#{prefix}-webrtc")
    access = root.get_by_text("Click to Access Microphone")
    access.wait_for(timeout=30_000)
    access.click()
    start = root.locator('button[aria-label="start stream"]')
    start.wait_for(timeout=30_000)
    start.click()


def talk(page: Page, url: str, listen_s: float) -> dict:
    """Open the page, start the stream, wait for a reply, return measurements."""
    page.goto(url)
    start_microphone(page, "talk")
    deadline = time.monotonic() + listen_s
    result: dict = {}
    while time.monotonic() < deadline:
        page.wait_for_timeout(250)
        result = analyse(page.evaluate("window.__probe"))
        if result["reply_onset_ms"] is not None and result["reply_loud_ms"] >= 300:
            break
    status = page.locator("#talk-status")
    for _ in range(40):  # the transcript, status and timeline plot follow the audio
        if "voice-to-voice" in status.inner_text():
            break
        page.wait_for_timeout(250)
    result["transcript"] = page.locator("#talk-transcript").inner_text()
    result["status"] = status.inner_text()
    result["has_timeline_plot"] = page.locator("#talk-timeline img, #talk-timeline svg, #talk-timeline canvas").count() > 0
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--engine", default="echo")
    parser.add_argument("--catalog")
    parser.add_argument("--screenshot")
    parser.add_argument("--listen", type=float, default=20.0)
    args = parser.parse_args()
    with running_app(args.engine, catalog=args.catalog) as url, chromium_page(args.wav, PROBE_JS) as page:
        result = talk(page, url, args.listen)
        if args.screenshot:
            page.screenshot(path=args.screenshot, full_page=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
