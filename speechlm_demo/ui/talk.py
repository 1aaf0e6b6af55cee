"""Talk tab: pick an engine, talk over WebRTC, read the transcript and each turn's latency timeline."""

from __future__ import annotations

import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import gradio as gr
from fastrtc import WebRTC

from ..engines.registry import EngineRegistry
from ..plots import close, timeline_figure
from ..rtc import EngineStreamHandler, browser_rtc_configuration, max_sessions, server_rtc_configuration
from ..rtc_offer import guard_offers
from .text import plain

LOAD_POLL_S = 0.25


def _engine_choices(registry: EngineRegistry) -> list[tuple[str, str]]:
    return [(registry.availability[eid].entry.label, eid) for eid in registry.offered_ids()]


def load_status_updates(registry: EngineRegistry, engine_id: str | None) -> Iterator[str]:
    """Start loading the chosen engine and report progress until it is ready or failed."""
    if not engine_id:
        yield "No engine selected."
        return
    registry.preload(engine_id)
    label = registry.availability[engine_id].entry.label
    started = time.monotonic()
    while True:
        state = registry.state(engine_id)
        if state.status in ("ready", "failed"):
            yield ("✅ " if state.status == "ready" else "❌ ") + state.message
            return
        yield f"⏳ Loading {label}… {time.monotonic() - started:.0f} s"
        time.sleep(LOAD_POLL_S)


def escaped(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """Chat messages with their text escaped (:func:`plain`): transcripts, replies and errors are shown
    literally, never as Markdown or HTML."""
    return [{"role": m["role"], "content": plain(m["content"])} for m in messages]


def _show(messages: list[dict[str, str]], timelines: list[dict[str, Any]], status: str, shown: Any) -> tuple:
    """Turn a handler update into component values; redraw the plot only when a turn finished. ``shown`` is the
    timeline last plotted (not a count: the handler keeps only the last 20; not a turn id: a new connection counts
    from 1 again); the fourth value is the new one."""
    figure: Any = gr.skip()
    last = timelines[-1] if timelines else None
    if last is not None and last != shown:
        fig = timeline_figure([(last.get("engine_id", ""), last)], title=f"Turn {last.get('turn_id')}")
        figure = fig
        close(fig)
    return escaped(messages), figure, plain(status) if status else status, last if last is not None else shown


def build_talk_tab(registry: EngineRegistry, preselect: str | None = None) -> tuple[gr.Dropdown, gr.Markdown]:
    """Create the tab's components and wire them (call inside a ``gr.Tab``).

    Returns the engine dropdown and its load-status line, so the page can report loading on open.
    """
    choices = _engine_choices(registry)
    default = preselect if preselect in registry.offered_ids() else registry.default_id()
    with gr.Row():
        with gr.Column(scale=2):
            engine = gr.Dropdown(choices=choices, value=default, label="Engine", elem_id="talk-engine")
            with gr.Accordion("Session settings", open=False):
                system_prompt = gr.Textbox(
                    label="System prompt (engines that take one)",
                    placeholder="Leave empty for the engine's default",
                    lines=2,
                )
                voice = gr.Textbox(
                    label="Voice (engines that offer one, e.g. Chelsie or Ethan for Qwen2.5-Omni)",
                    placeholder="Leave empty for the engine's default",
                    lines=1,
                )
            load_status = gr.Markdown(elem_id="talk-load-status")
            audio = guard_offers(WebRTC(
                label="Microphone",
                modality="audio",
                mode="send-receive",
                rtc_configuration=browser_rtc_configuration(),
                server_rtc_configuration=server_rtc_configuration(),
                elem_id="talk-webrtc",
                full_screen=False,
            ))
            status = gr.Markdown(elem_id="talk-status")
        with gr.Column(scale=3):
            transcript = gr.Chatbot(
                type="messages", label="Transcript", height=320, elem_id="talk-transcript", allow_tags=False
            )
            empty = timeline_figure([])
            plot = gr.Plot(empty, label="Latency timeline of the last turn", elem_id="talk-timeline")
            close(empty)
    shown = gr.State(None)  # the timeline last plotted
    audio.stream(
        EngineStreamHandler(registry),
        inputs=[audio, engine, system_prompt, voice],
        outputs=[audio],
        concurrency_limit=max_sessions(),
    )
    audio.on_additional_outputs(
        lambda shown_count, messages, timelines, text: _show(messages, timelines, text, shown_count),
        inputs=[shown],
        outputs=[transcript, plot, status, shown],
        show_progress="hidden",
        concurrency_limit=None,
    )
    # it only polls and sleeps: each user's own line, never queued behind another user's long load
    engine.change(partial(load_status_updates, registry), inputs=[engine], outputs=[load_status], concurrency_limit=None)
    return engine, load_status
