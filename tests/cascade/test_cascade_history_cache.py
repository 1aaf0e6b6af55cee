"""A long conversation keeps llama.cpp's prompt cache: the history is cut in blocks, not by one exchange a turn.

The review: from the 12th turn on, the pipeline dropped the oldest exchange every turn (and ``_fitting`` left just
enough out once the context was full), so the prompt after the system message changed from its first message on;
llama.cpp's prefix cache missed and the whole history was read again before every first token (0.17 s -> ~4 s).
These tests count the turns whose prompt does not start with the previous turn's prompt (a cache miss),
and the prompt tokens llama.cpp evaluates per turn: no clocks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from speechlm_demo.engines.base import SessionOptions, UserTurn
from speechlm_demo.engines.cascade import pipeline
from speechlm_demo.engines.cascade.asr import Heard
from speechlm_demo.engines.cascade.llm import LlamaCppLLM, Messages, build_llm
from speechlm_demo.engines.history import trim_history
from speechlm_demo.timeline import Timeline
from tests.cascade.conftest import need
from tests.cascade.test_cascade_pipeline import OFFLINE_DEFAULTS, entry

QUESTIONS = [
    "What is a good name for a small brown dog that likes to run in the park every morning?",
    "Can you tell me something interesting about the moon and why it has phases?",
    "How do I cook rice so that it does not stick to the bottom of the pot?",
    "What should I pack for a weekend trip to the seaside in late September?",
]
ANSWER = "That is a good question, and I would say it depends on the weather and on what you like best."


def misses(prompts: list[Messages]) -> int:
    """Turns whose prompt does not begin with the previous turn's whole prompt (llama.cpp reads it all again)."""
    return sum(later[: len(earlier)] != earlier for earlier, later in zip(prompts, prompts[1:]))


class _Silent:
    sample_rate = 22_050

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[np.ndarray]:
        yield np.zeros(10, np.float32)


class _Recording:
    """An LLM that says :data:`ANSWER` and keeps every prompt."""

    def __init__(self) -> None:
        self.prompts: list[Messages] = []

    def stream(self, messages: Messages, cancel: threading.Event, **_: Any) -> Iterator[str]:
        self.prompts.append([dict(m) for m in messages])
        yield ANSWER


def talk(engine: pipeline.CascadeEngine, monkeypatch: pytest.MonkeyPatch, turns: int) -> list[dict[str, str]]:
    said = iter(range(1000))
    monkeypatch.setattr(pipeline, "hear_turn", lambda asr, audio, rate, cancel=None: Heard(QUESTIONS[next(said) % 4], 0.9))
    history: list[dict[str, str]] = []
    for number in range(1, turns + 1):
        turn = UserTurn(number, np.zeros(16_000, np.float32), 16_000, Timeline())
        list(engine.respond(turn, history, SessionOptions(temperature=0.0, seed=1)))
    return history


def test_the_history_is_cut_in_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """40 turns: the prompt changes at its start once every few turns, not on every turn from the 11th on."""
    engine = pipeline.CascadeEngine(entry({**OFFLINE_DEFAULTS, "warm_up": False}))
    llm = _Recording()
    engine.asr, engine.llm, engine.tts = None, llm, _Silent()  # type: ignore[assignment]
    history = talk(engine, monkeypatch, 40)
    lengths = [len(prompt) - 2 for prompt in llm.prompts]  # the history each turn heard
    assert max(lengths) == 2 * pipeline.HISTORY_TURNS and min(lengths[pipeline.HISTORY_TURNS :]) >= pipeline.HISTORY_TURNS
    assert misses(llm.prompts) <= 40 // (pipeline.HISTORY_TURNS // 2)  # was 29: every turn from the 11th on
    assert history[0]["role"] == "user" and len(history) <= 2 * pipeline.HISTORY_TURNS


def test_trim_history_keeps_a_user_message_first() -> None:
    history = [{"role": "user", "content": "a"}] + [{"role": r, "content": r} for r in ["assistant", "user"] * 11]
    trim_history(history, turns=10)
    assert history[0]["role"] == "user" and 9 <= len(history) <= 10
    exchanges = [{"role": r, "content": f"{r}{i}"} for i in range(3) for r in ("user", "assistant")]
    trim_history(exchanges, turns=1)  # one exchange kept: the last, whole
    assert [m["content"] for m in exchanges] == ["user2", "assistant2"]
    kept = [{"role": r, "content": r} for r in ("user", "assistant") * 4]
    trim_history(kept, turns=4)
    assert len(kept) == 8  # within the limit: untouched


@pytest.mark.slow
def test_a_full_context_is_cut_in_blocks() -> None:
    """``_fitting`` on SmolLM2's tokenizer in a 1024-token context: once full, it leaves out about half, and the
    next turns keep that cut (it left out exactly enough, so every later turn missed the cache)."""
    need("llama_cpp")
    llm = build_llm({"kind": "llama-cpp", "model": "offline", "n_ctx": 1024, "max_tokens": 40})
    assert isinstance(llm, LlamaCppLLM)
    system = {"role": "system", "content": pipeline.DEFAULT_SYSTEM_PROMPT}
    history: Messages = []
    prompts = []
    for number in range(40):
        user = {"role": "user", "content": QUESTIONS[number % 4]}
        prompts.append(llm._fitting([system, *history, user]))
        history += [user, {"role": "assistant", "content": ANSWER}]
    sizes = [sum(llm._message_tokens(m) for m in prompt) for prompt in prompts]
    assert max(sizes) <= 1024 - 64 and all(prompt[1]["role"] == "user" for prompt in prompts)
    assert len(prompts[-1]) < 2 * 40 and misses(prompts) <= 4  # 3: a cut every 9 turns (was every turn once full)


@pytest.mark.slow
def test_llama_cpp_reads_only_the_new_words_most_turns(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reviewer's session end to end (ASR and TTS stubbed): prompt tokens llama.cpp evaluates per turn. A turn
    after a cut reads the history again; the others read the new question and the last answer only."""
    need("llama_cpp")
    engine = pipeline.CascadeEngine(entry({**OFFLINE_DEFAULTS, "warm_up": False, "llm": {**OFFLINE_DEFAULTS["llm"], "n_ctx": 768, "max_tokens": 16}}))
    engine.llm = build_llm(engine.settings.llm)
    engine.asr, engine.tts = None, _Silent()  # type: ignore[assignment]
    llama = engine.llm._llama  # type: ignore[attr-defined]
    evaluated: list[list[int]] = []
    real_eval = llama.eval

    def counting_eval(tokens: Any) -> None:
        evaluated[-1].append(len(tokens))
        real_eval(tokens)

    monkeypatch.setattr(llama, "eval", counting_eval)
    real_stream = engine.llm.stream

    def stream(*args: Any, **kwargs: Any) -> Iterator[str]:
        evaluated.append([])
        yield from real_stream(*args, **kwargs)

    monkeypatch.setattr(engine.llm, "stream", stream)
    talk(engine, monkeypatch, 18)
    prompt_reads = [turn[0] for turn in evaluated]  # the first eval of a turn is its prompt, less the cached prefix
    rereads = sum(tokens > 150 for tokens in prompt_reads[1:])  # a question and an answer are ~60 tokens
    print("prompt tokens evaluated per turn:", prompt_reads)
    assert rereads <= 2, prompt_reads  # turns 12 and 18, after the cuts; was 7: every turn from the 12th on
