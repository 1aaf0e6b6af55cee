"""SpeechLM Playground entry point (also the Hugging Face Space app file).

``python app.py [--engine ID] [--port N]`` serves the UI; importing this module builds ``demo``.
"""

if __name__ == "__main__":  # first: Ctrl-C while starting exits cleanly (speechlm_demo/interrupt.py); importers keep theirs
    from speechlm_demo.interrupt import exit_on_interrupt

    exit_on_interrupt()

import logging  # noqa: E402
import sys  # noqa: E402

from speechlm_demo.env_settings import drop_unreadable_gradio_port  # noqa: E402

logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
drop_unreadable_gradio_port()  # Gradio reads it when imported, on the next line, and stops on a non-number

from speechlm_demo.server import create_demo, parse_app_args, serve  # noqa: E402 - after the line above

config = parse_app_args(sys.argv[1:] if __name__ == "__main__" else [])
demo, registry = create_demo(config)

if __name__ == "__main__":
    serve(demo, registry, config)
