"""Qwen2.5-Omni over vLLM-Omni (the fake server) in Talk (the RTC handler), Blind A/B rounds and listening sessions."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from fastrtc import AdditionalOutputs

from speechlm_demo.catalog import load_catalog
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.hardware import simulated_host
from speechlm_demo.rtc import OUTPUT_SAMPLE_RATE, EngineStreamHandler
from speechlm_demo.votes.listening import ListeningSession, prepare
from speechlm_demo.votes.pending import PendingVotes
from speechlm_demo.votes.rounds import BlindArena
from speechlm_demo.votes.store import VoteStore
from tests.engines_for_tests import silence, tone
from tests.qwen.fake_vllm_omni import FakeServer

QWEN = "qwen2.5-omni-vllm"


@pytest.fixture
def registry(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> EngineRegistry:
    monkeypatch.setenv("VLLM_OMNI_URL", fake.url)
    return EngineRegistry(load_catalog(), simulated_host("cpu"))


def turn_frames(seconds: float) -> list[tuple[int, np.ndarray]]:
    """A turn as 20 ms int16 frames at 48 kHz, followed by 1.2 s of silence (past the 700 ms rule)."""
    pcm = np.concatenate([tone(seconds, 48_000), silence(1.2, 48_000)])
    pcm16 = (pcm * 32767).astype(np.int16)[None, :]
    return [(48_000, pcm16[:, i : i + 960]) for i in range(0, pcm16.shape[1], 960)]


async def talk(registry: EngineRegistry, fake: FakeServer) -> list[list]:
    handler = EngineStreamHandler(registry, QWEN, ui_args=False)
    await handler.start_up()
    per_turn: list[list] = []
    for scenario in ("ok", "http_500", "ok"):
        fake.state.scenario = scenario
        outputs: list = []
        for frame in turn_frames(0.6):
            await handler.receive(frame)
            await asyncio.sleep(0.02)  # real time: the turn layer's silence rule counts wall-clock time
        deadline = asyncio.get_running_loop().time() + 3.0
        while asyncio.get_running_loop().time() < deadline:
            try:
                outputs.append(await asyncio.wait_for(handler.emit(), 0.1))
            except TimeoutError:
                pass
        per_turn.append(outputs)
    handler.shutdown()
    return per_turn


@pytest.mark.slow
def test_talk_tab_handler_plays_qwen_and_survives_a_failed_turn(registry: EngineRegistry, fake: FakeServer) -> None:
    first, failed, third = asyncio.run(talk(registry, fake))
    for outputs in (first, third):
        audio = [o for o in outputs if isinstance(o, tuple)]
        assert audio and all(sr == OUTPUT_SAMPLE_RATE for sr, _ in audio)
    messages = [m["content"] for m in [o for o in failed + third if isinstance(o, AdditionalOutputs)][-1].args[0]]
    assert any("HTTP 500" in m for m in messages)
    assert any(m.startswith("I heard") for m in messages)
    timelines = [o for o in third if isinstance(o, AdditionalOutputs)][-1].args[1]
    assert [t["status"] for t in timelines[-3:]] == ["ok", "failed", "ok"]
    assert timelines[-1]["metrics"]["server_first_audio_ms"] > timelines[-1]["metrics"]["server_first_text_ms"]


@pytest.mark.slow
def test_blind_round_and_listening_session(registry: EngineRegistry, tmp_path: Path) -> None:
    store = VoteStore(f"sqlite:///{tmp_path / 'votes.db'}")
    echo = registry.availability["echo"].entry.model_copy(update={"weight": 1.0})  # echo never enters blind rounds by itself
    entries = [registry.availability[QWEN].entry, echo]
    arena = BlindArena(store, lambda: entries, pending=PendingVotes(store, tmp_path / "pending.jsonl"), audio_dir=tmp_path / "audio")
    audio = np.concatenate([tone(0.8), silence(0.2)])
    blind = arena.start_round("session-1", audio, 16_000)
    replies = arena.run_round(blind.round_id, "session-1", registry.get, timeout_s=30)
    sides = {replies.a.engine_id: replies.a, replies.b.engine_id: replies.b}
    assert set(sides) == {QWEN, "echo"} and sides[QWEN].ok and len(sides[QWEN].audio)
    prompts = tmp_path / "prompts"
    prompts.mkdir()
    sf.write(prompts / "q.wav", audio, 16_000)
    folder = prepare(registry, prompts, [QWEN, "echo"], "omni-evening", root=tmp_path / "sessions", timeout_s=30)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["prompts"][0]["replies"][QWEN]["status"] == "ok"
    session = ListeningSession("omni-evening", root=tmp_path / "sessions")
    comparison = session.comparison(session.draw(random.Random(0)), QWEN, "echo")
    assert comparison.a.ok and len(comparison.a.audio) and comparison.a.reply_text.startswith("I heard")
