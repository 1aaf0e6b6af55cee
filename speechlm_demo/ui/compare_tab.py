"""Compare tab: speak once; the same recorded turn goes to engines A and B at once; hear, read and time both."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from typing import Any

import gradio as gr

from ..audio import to_int16
from ..compare import Comparison, SideResult, as_they_finish, compare
from ..engines.base import SessionOptions
from ..engines.registry import EngineRegistry
from ..plots import close, pair_figure, timeline_figure
from ..recorder import RecordedTurn
from ..timeline import LATENCY_FROM, ORIGIN_LABELS, usage_note
from .judges_view import JUDGES_PENDING, judge_pair
from .recording import build_turn_input
from .text import plain

SIDES = ("a", "b")


def side_summary(label: str, result: SideResult | None) -> str:
    """One Markdown line for a side: running, failed (with the reason) or its voice-to-voice latency."""
    name = plain(label)
    if result is None:
        return f"**{name}**: ⏳ answering…"
    if result.status == "fallback":
        return f"**{name}**: ⚠️ {plain(result.message)} (the reply below is the fallback's)"
    if not result.ok:
        return f"**{name}**: ❌ {result.status}: {plain(result.message or 'no reply')}"
    latency = result.latency_ms
    timing = f"voice-to-voice **{latency:.0f} ms** (from {ORIGIN_LABELS[LATENCY_FROM]})" if latency is not None else "no reply audio"
    cost = usage_note(result.timeline.get("extra", {}))
    return f"**{name}**: ✅ {timing} · {len(result.audio) / result.sample_rate:.1f} s of audio{cost}"


def pending_judges(turn: RecordedTurn | None) -> Any:
    """The judge table while a new pair is compared (the last pair's scores must not stay beside it)."""
    return gr.skip() if turn is None else JUDGES_PENDING


def side_outputs(label: str, result: SideResult | None) -> tuple[Any, ...]:
    """Summary, reply audio, the user's words as the engine heard them, and the reply text."""
    if result is None:
        return side_summary(label, None), None, "", ""
    audio = (result.sample_rate, to_int16(result.audio)) if result.status in ("ok", "fallback") and len(result.audio) else None  # int16: Gradio would normalise floats
    return side_summary(label, result), audio, result.user_text or "(no transcript)", result.reply_text or "(no text)"


def run_comparison(
    registry: EngineRegistry, turn: RecordedTurn | None, engine_a: str | None, engine_b: str | None, system_prompt: str, voice: str = ""
) -> Iterator[tuple[Any, ...]]:
    """Compare the turn on both engines; yields the status, both sides (as each finishes) and the figure."""
    if turn is None:
        return
    if not engine_a or not engine_b:
        yield ("⚠️ Pick engine A and engine B first.", *side_outputs("A", None), *side_outputs("B", None), gr.skip())
        return
    labels = tuple(registry.availability[e].entry.label if e in registry.availability else e for e in (engine_a, engine_b))
    options = SessionOptions(system_prompt=system_prompt.strip() or None, voice=(voice or "").strip() or None)
    done: dict[str, SideResult] = {}
    status = f"Comparing your {turn.duration_s:.1f} s turn on both engines…"
    yield (status, *side_outputs(labels[0], None), *side_outputs(labels[1], None), gr.skip())
    sources = (partial(registry.get, engine_a), partial(registry.get, engine_b))
    for item in as_they_finish(lambda on_result: compare(*sources, turn.audio, turn.sample_rate, options=options, on_result=on_result)):
        if isinstance(item, Comparison):
            break
        done[item[0]] = item[1]
        yield (status, *side_outputs(labels[0], done.get("a")), *side_outputs(labels[1], done.get("b")), gr.skip())
    final = f"Done: both engines answered the same {turn.duration_s:.1f} s of audio. Speak again to compare another turn."
    figure = pair_figure([(f"A · {engine_a}", item.a.timeline), (f"B · {engine_b}", item.b.timeline)])
    yield (final, *side_outputs(labels[0], item.a), *side_outputs(labels[1], item.b), figure)


def build_compare_tab(registry: EngineRegistry) -> None:
    """Create the tab's components and wire them (call inside a ``gr.Tab``)."""
    offered = registry.offered_ids()
    choices = [(registry.availability[i].entry.label, i) for i in offered]
    gr.Markdown(
        "Pick two engines, press the microphone button and ask something, then pause. Your turn is recorded once "
        "and the **same audio** goes to both engines at the same time; a full-duplex engine hears it followed by "
        "silence and is recorded for a few seconds."
    )
    with gr.Row():
        engine_a = gr.Dropdown(choices=choices, value=offered[0] if offered else None, label="Engine A", elem_id="compare-engine-a")
        engine_b = gr.Dropdown(choices=choices, value=offered[1] if len(offered) > 1 else None, label="Engine B", elem_id="compare-engine-b")
    with gr.Row():
        system_prompt = gr.Textbox(label="System prompt for both (engines that take one)", placeholder="Leave empty for each engine's default", lines=1, scale=3)
        voice = gr.Textbox(label="Voice (engines that offer one, e.g. Chelsie or Ethan)", placeholder="Engine's default", lines=1, scale=1)
    with gr.Row():
        with gr.Column(scale=1):
            mic = build_turn_input("compare")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="compare-status")
    columns = []
    with gr.Row():
        for side in SIDES:
            with gr.Column():
                summary = gr.Markdown(elem_id=f"compare-{side}-summary")
                audio = gr.Audio(label=f"Reply {side.upper()}", type="numpy", interactive=False, elem_id=f"compare-{side}-audio")
                heard = gr.Textbox(label="What it heard", interactive=False, lines=1, elem_id=f"compare-{side}-heard")
                reply = gr.Textbox(label="What it said", interactive=False, lines=3, elem_id=f"compare-{side}-reply")
                columns += [summary, audio, heard, reply]
    empty = timeline_figure([])
    plot = gr.Plot(empty, label="Latency timelines", elem_id="compare-timeline")
    close(empty)
    judged = gr.Dataframe(label="Automatic judges (computed once both replies are in)", interactive=False, elem_id="compare-judges")
    mic.turn_id.change(pending_judges, inputs=[mic.turn], outputs=[judged], show_progress="hidden", queue=False).then(
        partial(run_comparison, registry),
        inputs=[mic.turn, engine_a, engine_b, system_prompt, voice],
        outputs=[status, *columns, plot],
        show_progress="hidden",
        concurrency_limit=2,
    ).then(judge_pair, inputs=[columns[1], columns[3], columns[5], columns[7]], outputs=[judged], show_progress="minimal", concurrency_limit=1)
