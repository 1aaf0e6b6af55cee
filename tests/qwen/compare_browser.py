"""Headless Chromium compares Qwen2.5-Omni (over the fake vLLM-Omni server) with the offline cascade.

Runs inside a loopback-only network namespace (the fake server runs in this process, on 127.0.0.1); prints
one JSON line with what the Compare tab showed, plus what the fake server received.
Usage: python -m tests.qwen.compare_browser --wav FILE [--screenshot PNG]
"""

from __future__ import annotations

import json
import os

from tests.qwen.fake_vllm_omni import FakeServer
from tests.support.arena_check import compare_arguments, compare_with_cascade

QWEN_LABEL = "Qwen2.5-Omni 7B via vLLM-Omni (your server, ~31 GB GPU)"


def main() -> None:
    args = compare_arguments(timeout_s=120.0)
    with FakeServer() as fake:
        os.environ["VLLM_OMNI_URL"] = fake.url  # the app process inherits it
        result = compare_with_cascade(QWEN_LABEL, args)
        result["fake_requests"] = len([r for r in fake.state.requests if "messages" in r])
    print(json.dumps(result))


if __name__ == "__main__":
    main()
