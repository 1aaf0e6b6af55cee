"""OpenAI Realtime (``gpt-realtime``, ``gpt-4o-realtime-preview``) over its websocket API.

Two modes: :mod:`.half_duplex` (our turn layer commits each turn; comparable with every other half-duplex
engine) and :mod:`.server_vad` (the server's VAD decides; barge-in cancels and truncates the reply).
"""

SAMPLE_RATE = 24_000
