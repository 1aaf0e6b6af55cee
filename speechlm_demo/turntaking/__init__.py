"""The turn layer: who speaks when. Engines use it; the seam's protocol (:mod:`speechlm_demo.engines.base`)
knows nothing of it.

* :mod:`.voice_activity` — the VAD protocol and a dependency-free energy VAD;
* :mod:`.detector` — samples in, decisions out (speech started, pause, resumed, turn closed), ``TurnSettings``;
* :mod:`.endpointing` — is the transcript a finished request?;
* :mod:`.half_duplex` — ``HalfDuplexEngine`` / ``HalfDuplexSettings`` / ``HalfDuplexSession``, with
  :mod:`.speculative_reply` (one reply in a worker thread);
* :mod:`.duplex_turns` — per-user-turn timelines of a full-duplex stream (``DuplexSettings``).
"""
