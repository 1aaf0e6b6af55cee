"""Talk tab wiring: each user's load-status line is their own, and the latency plot follows every finished turn."""

from __future__ import annotations

import threading

import gradio as gr
from gradio_client import Client

from speechlm_demo.measure.record import TurnRecord
from speechlm_demo.rtc import Conversation
from speechlm_demo.server import AppConfig, create_registry
from speechlm_demo.timeline import Timeline
from speechlm_demo.ui.talk import _show, build_talk_tab


def test_a_slow_load_for_one_user_does_not_queue_another_users_status() -> None:
    """User 1's engine stays "loading" until user 2's status line is in: with the event's concurrency limited to
    one, user 2 would wait for user 1's load (here: forever, cut by the join timeout)."""
    registry = create_registry(AppConfig(engine="echo"))
    registry.get("echo")
    polling = threading.Event()
    registry.preload = lambda engine_id: polling.set() if engine_id == "cascade" else None  # type: ignore[method-assign]
    registry._states["cascade"].status = "loading"  # user 1's pick: a model still loading
    with gr.Blocks() as demo:
        build_talk_tab(registry, "echo")
    demo.queue()
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1")
    try:
        user1, user2 = Client(url, verbose=False), Client(url, verbose=False)
        slow = user1.submit("cascade", api_name="/partial")  # Talk tab: engine dropdown changed
        assert polling.wait(30), "user 1's status never started polling"
        box: dict[str, str] = {}
        worker = threading.Thread(target=lambda: box.update(status=user2.predict("echo", api_name="/partial")), daemon=True)
        worker.start()
        worker.join(20)
        waited = worker.is_alive()
        registry._states["cascade"].status = "ready"  # let user 1's generator end
        worker.join(10)
        slow.cancel()
        assert not waited, "user 2's status line waited for user 1's load"
        assert box["status"].startswith("✅")
    finally:
        demo.close()


def test_the_plot_is_redrawn_for_every_turn_also_once_the_kept_timelines_are_capped() -> None:
    conversation = Conversation()
    shown = 0
    not_redrawn = []
    for turn in range(1, 26):
        timeline = Timeline(turn_id=turn, engine_id="echo")
        timeline.mark("user_speech_end", 1.0)
        timeline.mark("first_audio_out", 1.3)
        conversation.timelines = (conversation.timelines + [TurnRecord("echo", turn, timeline).to_dict()])[-20:]  # as rtc.py
        messages, timelines, status = conversation.snapshot().args
        _, figure, _, shown = _show(messages, timelines, status, shown)
        if isinstance(figure, type(gr.skip())):
            not_redrawn.append(turn)
        messages, timelines, status = conversation.snapshot().args  # an update with no new turn (e.g. a message)
        _, figure, _, shown = _show(messages, timelines, status, shown)
        assert isinstance(figure, type(gr.skip())), f"turn {turn}'s plot was redrawn without a new turn"
    assert not_redrawn == [], f"the latency plot was not redrawn for turns {not_redrawn}"


def test_the_first_turn_of_a_new_connection_is_plotted() -> None:
    """The page keeps what it plotted across connections; a new connection's turns count from 1 again."""
    shown = None
    for speech_end in (1.0, 2.0):  # turn 1 of the first connection, then turn 1 of the next one
        timeline = Timeline(turn_id=1, engine_id="echo")
        timeline.mark("user_speech_end", speech_end)
        timeline.mark("first_audio_out", speech_end + 0.4 * speech_end)
        _, figure, _, shown = _show([], [TurnRecord("echo", 1, timeline).to_dict()], "", shown)
        assert not isinstance(figure, type(gr.skip()))
