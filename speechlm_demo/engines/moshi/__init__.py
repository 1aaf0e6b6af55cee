"""Kyutai Moshi: full-duplex speech-to-speech, in process (:mod:`.local`) or through moshi-server (:mod:`.remote`).

Moshi works on 80 ms frames of 24 kHz mono audio (1920 samples). Importing this package is cheap: torch and
the ``moshi`` package are imported only by the in-process engine and the benchmark.
"""

SAMPLE_RATE = 24_000
FRAME_SIZE = 1_920
FRAME_S = FRAME_SIZE / SAMPLE_RATE
