"""Assemble the tabs into one Gradio Blocks app."""

from __future__ import annotations

from functools import partial

import gradio as gr

from .. import __version__
from ..engines.registry import EngineRegistry
from ..judges.background import start_worker
from ..votes.pairs import blind_candidates
from ..votes.rounds import BlindArena
from ..votes.store import VoteStore
from .blind_tab import build_blind_tab
from .compare_tab import build_compare_tab
from .engines_tab import build_engines_tab
from .leaderboard_tab import build_leaderboard_tab
from .talk import build_talk_tab, load_status_updates

ABOUT = """
### SpeechLM Playground {version}
Talk live to speech language models and to the classic VAD → ASR → LLM → TTS cascade, and measure them
the same way: every turn is a timeline of marks on one clock, and **voice-to-voice latency** is the time
from the end of your speech to the first audible reply sample. Each figure says which end of speech it starts
at: on **Talk**, the turn layer's own estimate (live, there is nothing else); on **Compare**, **Blind A/B** and
the **Leaderboard**, the reference end of the recorded turn (the same for both engines).

* **Talk**: pick an engine, press the microphone button, speak, pause. The transcript and the latency
  timeline of each turn appear on the right.
* **Compare**: pick two engines and speak once; the same recorded turn goes to both at the same time.
  Hear both replies, read both transcripts and see both timelines aligned at the end of your speech.
* **Blind A/B**: two anonymous engines answer the same turn; listen to both, vote, then see who was who.
  A shared link with `?session=NAME` opens a prepared listening session instead of the microphone.
* **Leaderboard**: engines ranked from blind votes (Bradley-Terry, 95 % bootstrap intervals), win rates and
  the latency of the voted replies.
* **Engines**: what this host can run, and why the others are not offered.

Audio is processed in memory and is not stored. A blind vote stores the two engines, your choice, the
random voter id this app gave your browser (a cookie; it keeps one person from voting many times), a hash
of your turn's audio, what the engines heard you say and replied (transcripts),
their latencies and timelines, and the versions; the audio itself only if the host set
`SPEECHLM_SAVE_AUDIO=1`.
"""


def build_demo(registry: EngineRegistry, preselect: str | None = None, store: VoteStore | None = None) -> gr.Blocks:
    """The whole app; ``store`` holds the votes (None: the leaderboard says it is unavailable)."""
    judge = start_worker(store, lambda: registry.catalog.engines) if store is not None else None
    arena = BlindArena(store, lambda: blind_candidates(registry), on_vote=judge.on_vote if judge else None, leak_check=judge.leaks if judge else None) if store is not None else None
    with gr.Blocks(title="SpeechLM Playground", analytics_enabled=False) as demo:
        gr.Markdown("# 🗣️ SpeechLM Playground")
        with gr.Tab("Talk"):
            engine, load_status = build_talk_tab(registry, preselect)
        with gr.Tab("Compare"):
            build_compare_tab(registry)
        with gr.Tab("Blind A/B"):
            build_blind_tab(demo, registry, arena)
        with gr.Tab("Leaderboard"):
            build_leaderboard_tab(demo, store)
        with gr.Tab("Engines"):
            build_engines_tab(registry)
        with gr.Tab("About"):
            gr.Markdown(ABOUT.format(version=__version__))
        demo.load(partial(load_status_updates, registry), inputs=[engine], outputs=[load_status], concurrency_limit=None)
    return demo
