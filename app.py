"""SpeechLM Playground entry point (also the Hugging Face Space app file).

``python app.py [--engine ID] [--port N]`` serves the UI; importing this module builds ``demo``.
"""

import logging
import sys

from speechlm_demo.env_settings import drop_unreadable_gradio_port

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
drop_unreadable_gradio_port()  # Gradio reads it when imported, on the next line, and stops on a non-number

from speechlm_demo.server import create_demo, parse_app_args, serve  # noqa: E402 - after the line above

config = parse_app_args(sys.argv[1:] if __name__ == "__main__" else [])
demo, registry = create_demo(config)

if __name__ == "__main__":
    serve(demo, registry, config)
