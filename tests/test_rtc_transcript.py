"""Talk transcript bubbles: a warning is a message of its own, and a failed turn's reason is said once."""

from __future__ import annotations

import asyncio

import numpy as np
from fastrtc import AdditionalOutputs

from speechlm_demo.catalog import load_catalog
from speechlm_demo.engines.base import ErrorEvent
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.hardware import simulated_host
from speechlm_demo.measure.record import TurnRecord
from speechlm_demo.rtc import Conversation, EngineStreamHandler
from speechlm_demo.timeline import Timeline
from tests.test_rtc_handler import frames_of, tone

TURN = np.concatenate([tone(0.6, 48_000), np.zeros((1, 48_000), np.int16)], axis=1)


def handler() -> EngineStreamHandler:
    return EngineStreamHandler(EngineRegistry(load_catalog(), simulated_host("cpu")), "echo", ui_args=False)


async def talk(frames: list) -> list[dict[str, str]]:
    """The transcript after ``frames`` were sent in real time, as the browser sends them."""
    rtc = handler()
    await rtc.start_up()
    for frame in frames:
        await rtc.receive(frame)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.5)
    updates = [o for o in rtc._drain() if isinstance(o, AdditionalOutputs)]
    rtc.shutdown()
    return updates[-1].args[0]


def test_a_warning_is_its_own_message_and_no_reply_text_joins_it() -> None:
    chat = Conversation()
    chat.warn("Input samples outside [-1, 1] were clipped.")  # between turns
    chat.add("assistant", "the reply")
    chat.add("assistant", "goes on")
    chat.warn("Scripted failed: model exploded")
    chat.add("assistant", "(interrupted)")
    chat.end_turn("🎤 (1.0 s of speech)")
    assert [m["content"] for m in chat.messages] == [
        "🎤 (1.0 s of speech)",
        "⚠️ Input samples outside [-1, 1] were clipped.",
        "the reply goes on",
        "⚠️ Scripted failed: model exploded",
        "(interrupted)",
    ]


def test_an_input_warning_is_not_glued_to_the_next_reply() -> None:
    loud = tone(0.02, 48_000).astype(np.float32)  # one float frame in int16 scale: the guard warns once
    messages = asyncio.run(talk([(48_000, loud)] + frames_of(TURN, 48_000)))
    replies = [m["content"] for m in messages if m["role"] == "assistant"]
    assert sum(text.startswith("⚠️") for text in replies) == 1
    assert any(text.startswith("(echo of") for text in replies), f"the reply is merged into the warning: {replies}"


def test_a_failed_turn_says_why_once(monkeypatch) -> None:
    def explode(self, turn, history, options):
        raise RuntimeError("model exploded")
        yield

    monkeypatch.setattr(EchoEngine, "respond", explode)
    messages = asyncio.run(talk(frames_of(TURN, 48_000)))
    text = " ".join(m["content"] for m in messages)
    assert text.count("model exploded") == 1, messages
    assert [m["role"] for m in messages] == ["user", "assistant"]  # the placeholder, then the reason


def failed_turn(turn_id: int, detail: str) -> TurnRecord:
    timeline = Timeline(turn_id=turn_id, engine_id="echo")
    timeline.status, timeline.detail = "failed", detail
    return TurnRecord("echo", turn_id, timeline)


def test_a_timed_out_turn_says_why_once_and_a_reason_not_yet_shown_is_shown() -> None:
    async def go() -> list[dict[str, str]]:
        rtc = handler()
        rtc._loop = asyncio.get_running_loop()
        abandoned = "Echo did not finish within 45 s; turn abandoned."
        rtc._on_event(ErrorEvent(abandoned))  # what the reply's watchdog emits, then its failed TurnEnd
        rtc._on_turn_end(failed_turn(1, abandoned))
        rtc._on_turn_end(failed_turn(2, "the server closed the stream"))  # no ErrorEvent said this one
        return rtc.conversation.messages

    texts = [m["content"] for m in asyncio.run(go())]
    assert " ".join(texts).count("did not finish within 45 s") == 1, texts
    assert "⚠️ Turn failed: the server closed the stream" in texts
