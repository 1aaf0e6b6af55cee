"""Inside the loopback namespace: start the fake Realtime server, point the app's gpt-realtime row at it
and let :mod:`tests.support.arena_check` drive the Compare tab (gpt-realtime vs the cascade) in Chromium.

Usage: python -m tests.clients.realtime_compare_check --wav FILE [--screenshot PNG]
"""

from __future__ import annotations

import json
import os

from tests.clients.fake_realtime import KEY, FakeRealtime
from tests.clients.serving import FakeHTTPServer
from tests.support.arena_check import compare_arguments, compare_with_cascade

REALTIME = "OpenAI gpt-realtime (our turn-taking)"


def main() -> None:
    args = compare_arguments(timeout_s=90.0)
    with FakeHTTPServer(FakeRealtime(reply_s=1.4).app) as url:
        os.environ["OPENAI_API_KEY"] = KEY  # the app subprocess inherits these
        os.environ["OPENAI_REALTIME_URL"] = url.replace("http://", "ws://") + "/v1/realtime"
        result = compare_with_cascade(REALTIME, args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
