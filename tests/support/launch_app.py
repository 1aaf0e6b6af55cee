"""Run the app for tests: ICE restricted to 127.0.0.1, otherwise exactly ``python app.py``.

Usage: python -m tests.support.launch_app --engine echo --port 7861 [--catalog FILE]
"""

from __future__ import annotations

import logging
import sys

from speechlm_demo.server import create_demo, parse_app_args, serve
from tests.support.loopback import offer_loopback_only

if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    offer_loopback_only()
    config = parse_app_args(sys.argv[1:])
    demo, registry = create_demo(config)
    serve(demo, registry, config)
