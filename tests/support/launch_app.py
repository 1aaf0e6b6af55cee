"""Run the app for tests: ICE restricted to 127.0.0.1, otherwise exactly ``python app.py``.

Usage: python -m tests.support.launch_app --engine echo --port 7861 [--catalog FILE]
"""

from __future__ import annotations

import logging
import sys

from speechlm_demo.benchmarks.rtc_peer import keep_ice_on_loopback
from speechlm_demo.server import create_demo, parse_app_args, serve

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keep_ice_on_loopback()
    config = parse_app_args(sys.argv[1:])
    demo, registry = create_demo(config)
    serve(demo, registry, config)
