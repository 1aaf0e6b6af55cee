"""Inside the loopback namespace: start the fake Realtime server, point the app's gpt-realtime row at it
and let :mod:`tests.support.arena_check` drive the Compare tab (gpt-realtime vs the cascade) in Chromium.

Usage: python -m tests.clients.realtime_compare_check --wav FILE [--screenshot PNG]
"""

from __future__ import annotations

import argparse
import json
import os

from tests.clients.fake_realtime import KEY, FakeRealtime
from tests.clients.serving import FakeHTTPServer
from tests.support.app_process import running_app
from tests.support.arena_check import PAYLOAD_JS, check_compare
from tests.support.browser_check import chromium_page

REALTIME = "OpenAI gpt-realtime (our turn-taking)"
CASCADE = "Offline cascade (Silero VAD + Whisper base + SmolLM2-135M + Piper)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--screenshot")
    args = parser.parse_args()
    with FakeHTTPServer(FakeRealtime(reply_s=1.4).app) as url:
        os.environ["OPENAI_API_KEY"] = KEY  # the app subprocess inherits these
        os.environ["OPENAI_REALTIME_URL"] = url.replace("http://", "ws://") + "/v1/realtime"
        with running_app("cascade") as app, chromium_page(args.wav, PAYLOAD_JS, height=1000) as page:
            page.goto(app)
            result = check_compare(page, [REALTIME, CASCADE], 90.0)
            if args.screenshot:
                page.screenshot(path=args.screenshot, full_page=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
