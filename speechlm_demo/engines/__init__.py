"""Engine plug-ins: each module implements :mod:`speechlm_demo.engines.base` for one engine family."""
