"""Real-browser check of the Talk tab's escaping: the markup engine's payloads must show as text, never run.

Runs inside a loopback-only network namespace; prints one JSON line with what the page showed.
Usage: python -m tests.support.markup_check --wav FILE --catalog tests/data/markup_catalog.yaml
"""

from __future__ import annotations

import argparse
import json
import time

from tests.support.app_process import running_app
from tests.support.browser_check import PROBE_JS, chromium_page, start_microphone

LIVE_MARKUP = "#talk-transcript img, #talk-transcript iframe, #talk-transcript script, #talk-transcript svg [onload], #talk-transcript a[href^='javascript'], #talk-transcript strong"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--catalog", required=True)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    with running_app("markup", catalog=args.catalog) as url, chromium_page(args.wav, PROBE_JS) as page:
        page.goto(url)
        start_microphone(page, "talk")
        transcript = page.locator("#talk-transcript")
        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline and "svg onload" not in transcript.inner_text():
            page.wait_for_timeout(250)
        page.wait_for_timeout(1500)  # an image's onerror or a frame's onload would have fired by now
        result = {
            "transcript": transcript.inner_text(),
            "status": page.locator("#talk-status").inner_text(),
            "live_markup": page.evaluate(f"Array.from(document.querySelectorAll({LIVE_MARKUP!r})).map(e => e.outerHTML.slice(0, 200))"),
            "pwned": page.evaluate("window.__pwned || null"),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
