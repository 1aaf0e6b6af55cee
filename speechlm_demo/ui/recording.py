"""A WebRTC microphone that records one turn at a time (for the Compare and Blind A/B tabs)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from fastrtc import WebRTC

from ..recorder import RecordedTurn, TurnRecorder
from ..rtc import browser_rtc_configuration, max_sessions, server_rtc_configuration
from ..rtc_offer import guard_offers


@dataclass
class TurnInput:
    """The components of a recording microphone: ``turn_id.change`` fires once per recorded turn."""

    webrtc: WebRTC
    status: gr.Markdown
    turn: gr.State
    turn_id: gr.State


def _route(status: str, turn: RecordedTurn | None) -> tuple[Any, Any, Any]:
    """Status lines go to the status; a finished turn also to the states (its id triggers the work)."""
    if turn is None:
        return status, gr.skip(), gr.skip()
    return status, turn, turn.turn_id


def build_turn_input(prefix: str, label: str = "Microphone") -> TurnInput:
    """Create the microphone (elem ids start with ``prefix``) and wire its recorder."""
    webrtc = guard_offers(WebRTC(
        label=label,
        modality="audio",
        mode="send-receive",
        rtc_configuration=browser_rtc_configuration(),
        server_rtc_configuration=server_rtc_configuration(),
        elem_id=f"{prefix}-webrtc",
        full_screen=False,
    ))
    status = gr.Markdown(elem_id=f"{prefix}-mic-status")
    turn, turn_id = gr.State(None), gr.State(0)
    webrtc.stream(
        TurnRecorder(),
        inputs=[webrtc],
        outputs=[webrtc],
        concurrency_limit=max_sessions(),
    )
    webrtc.on_additional_outputs(_route, outputs=[status, turn, turn_id], show_progress="hidden", concurrency_limit=None)
    return TurnInput(webrtc, status, turn, turn_id)
