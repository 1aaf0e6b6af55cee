"""``python -m speechlm_demo``: see :mod:`speechlm_demo.cli`."""

import sys

from .interrupt import exit_on_interrupt

exit_on_interrupt()  # before the imports below: Ctrl-C while anything starts exits cleanly (see .interrupt)

from .cli import main  # noqa: E402

sys.exit(main())
