"""The record-only WebRTC handler: browser frames in, one recorded turn per spoken turn out."""

from __future__ import annotations

import asyncio

import numpy as np
from fastrtc import AdditionalOutputs

from speechlm_demo.recorder import RecordedTurn, TurnRecorder, describe
from tests.engines_for_tests import silence, tone

BROWSER_RATE = 48_000
FRAME = 960  # 20 ms at 48 kHz, as the browser sends


def browser_frames(audio: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """int16 (1, 960) frames, like fastrtc hands to a mono handler."""
    pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16)
    return [(BROWSER_RATE, pcm[i : i + FRAME].reshape(1, -1)) for i in range(0, len(pcm) - FRAME + 1, FRAME)]


def drain(recorder: TurnRecorder) -> list[tuple[str, RecordedTurn | None]]:
    items = []
    while not recorder._queue.empty():
        item = recorder._queue.get_nowait()
        assert isinstance(item, AdditionalOutputs)
        items.append(tuple(item.args))
    return items


def run(recorder: TurnRecorder, frames: list[tuple[int, np.ndarray]]) -> list[tuple[str, RecordedTurn | None]]:
    async def feed() -> None:
        await recorder.start_up()
        for frame in frames:
            await recorder.receive(frame)

    asyncio.run(feed())
    return drain(recorder)


def test_a_spoken_turn_is_recorded_once_at_16_khz() -> None:
    audio = np.concatenate([silence(0.5, BROWSER_RATE), tone(1.2, BROWSER_RATE), silence(1.5, BROWSER_RATE)])
    outputs = run(TurnRecorder(), browser_frames(audio))
    statuses = [status for status, _ in outputs]
    turns = [turn for _, turn in outputs if turn is not None]
    assert statuses[0].startswith("🎙️") and any("Listening" in s for s in statuses)
    assert len(turns) == 1
    turn = turns[0]
    assert turn.sample_rate == 16_000 and turn.audio.dtype == np.float32
    assert 1.2 <= turn.duration_s <= 1.9  # the speech, its pre-roll and a short tail
    assert np.abs(turn.audio).max() > 0.2
    assert describe(turn).startswith("Recorded 1.")


def test_two_turns_get_two_ids_and_silence_gets_none() -> None:
    one = np.concatenate([tone(0.8, BROWSER_RATE), silence(1.2, BROWSER_RATE)])
    outputs = run(TurnRecorder(), browser_frames(np.concatenate([silence(1.0, BROWSER_RATE), one, one])))
    turns = [turn for _, turn in outputs if turn is not None]
    assert len(turns) == 2 and turns[0].turn_id != turns[1].turn_id
    assert [t for _, t in run(TurnRecorder(), browser_frames(silence(3.0, BROWSER_RATE))) if t is not None] == []


def test_unusable_frames_are_reported_and_the_recorder_goes_on() -> None:
    recorder = TurnRecorder()
    bad = [(0, np.zeros((1, FRAME), np.int16)), (BROWSER_RATE, np.array("garbage")), (BROWSER_RATE, np.zeros((9, 3, FRAME)))]
    good = browser_frames(np.concatenate([tone(1.0, BROWSER_RATE), silence(1.2, BROWSER_RATE)]))
    outputs = run(recorder, bad + good)
    assert any("Ignored unusable microphone audio (1x)" in status for status, _ in outputs)
    assert len([t for _, t in outputs if t is not None]) == 1


def test_nan_frames_count_as_silence_and_each_connection_has_its_own_recorder() -> None:
    recorder = TurnRecorder()
    nan = np.full((1, FRAME), np.nan, np.float32)
    outputs = run(recorder, [(BROWSER_RATE, nan)] * 100)
    assert [t for _, t in outputs if t is not None] == []
    copy = recorder.copy()
    assert copy is not recorder and copy._detector is not recorder._detector
