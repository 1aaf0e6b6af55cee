"""Start Kyutai's own ``moshi.server`` on a CPU-only host (used as a subprocess by the tests).

Its warm-up ends with ``torch.cuda.synchronize()``, which raises without CUDA: that one call is made a no-op,
everything else is the package's unmodified server. Arguments are the server's own (``--device cpu``, ...).
"""

import runpy
import sys

import torch

if __name__ == "__main__":
    if not torch.cuda.is_available():
        torch.cuda.synchronize = lambda *args, **kwargs: None
    sys.argv = ["moshi.server", *sys.argv[1:]]
    runpy.run_module("moshi.server", run_name="__main__")
