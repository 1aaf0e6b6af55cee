"""``python -m speechlm_demo``: see :mod:`speechlm_demo.cli`."""

import sys

from .cli import main

sys.exit(main())
