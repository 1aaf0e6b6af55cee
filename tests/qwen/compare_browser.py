"""Headless Chromium compares Qwen2.5-Omni (over the fake vLLM-Omni server) with the offline cascade.

Runs inside a loopback-only network namespace (the fake server runs in this process, on 127.0.0.1); prints
one JSON line with what the Compare tab showed, plus what the fake server received.
Usage: python -m tests.qwen.compare_browser --wav FILE [--screenshot PNG]
"""

from __future__ import annotations

import argparse
import json
import os

from tests.qwen.fake_vllm_omni import FakeServer
from tests.support.app_process import running_app
from tests.support.arena_check import PAYLOAD_JS, check_compare, wait_for_text
from tests.support.browser_check import chromium_page

QWEN_LABEL = "Qwen2.5-Omni 7B via vLLM-Omni (your server, ~31 GB GPU)"
CASCADE_LABEL = "Offline cascade (Silero VAD + Whisper base + SmolLM2-135M + Piper)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--screenshot")
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    with FakeServer() as fake:
        os.environ["VLLM_OMNI_URL"] = fake.url  # the app process inherits it
        with running_app("cascade") as url, chromium_page(args.wav, PAYLOAD_JS, height=1000) as page:
            page.goto(url)
            result = check_compare(page, [QWEN_LABEL, CASCADE_LABEL], args.timeout)
            for side in "ab":  # the page may still be painting the last update when the status reads "Done"
                result[f"summary_{side}"] = wait_for_text(page, f"#compare-{side}-summary", "voice-to-voice", 15)
                result[f"heard_{side}"] = page.locator(f"#compare-{side}-heard textarea").input_value()
            if args.screenshot:
                page.screenshot(path=args.screenshot, full_page=True)
        result["fake_requests"] = len([r for r in fake.state.requests if "messages" in r])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
