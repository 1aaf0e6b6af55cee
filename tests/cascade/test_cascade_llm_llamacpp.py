"""llama-cpp-python on the offline SmolLM2-135M-Instruct GGUF."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.cascade.llm import LLM, LlamaCppLLM, build_llm
from tests.cascade.conftest import need

pytestmark = pytest.mark.slow

MESSAGES = [
    {"role": "system", "content": "Answer in one short sentence."},
    {"role": "user", "content": "How many legs does a spider have?"},
]


@pytest.fixture(scope="module")
def llama() -> LlamaCppLLM:
    need("llama_cpp")
    llm = build_llm({"kind": "llama-cpp", "model": "offline", "max_tokens": 40})
    assert isinstance(llm, LlamaCppLLM)
    return llm


def test_streams_a_reply_in_pieces(llama: LlamaCppLLM) -> None:
    assert isinstance(llama, LLM)
    pieces = list(llama.stream(MESSAGES, threading.Event(), temperature=0.0))
    assert len(pieces) > 1
    assert "".join(pieces).strip()


def test_a_seed_repeats_the_reply_and_another_seed_may_not(llama: LlamaCppLLM) -> None:
    """The session's seed reaches llama.cpp's sampler: at a temperature that samples, the same seed gives the
    same words (a benchmark's two paths hear the same reply); without it, calls sample afresh."""
    hot = {"temperature": 1.5}
    first = "".join(llama.stream(MESSAGES, threading.Event(), seed=7, **hot))
    again = "".join(llama.stream(MESSAGES, threading.Event(), seed=7, **hot))
    assert first.strip() and first == again
    others = {"".join(llama.stream(MESSAGES, threading.Event(), seed=seed, **hot)) for seed in (1, 2, 3)}
    assert others - {first}, "three other seeds all gave the very same sampled words"


def test_cancel_stops_generation(llama: LlamaCppLLM) -> None:
    cancel = threading.Event()
    pieces = []
    for piece in llama.stream(MESSAGES, cancel):
        pieces.append(piece)
        cancel.set()
    assert pieces and len(pieces) == 1
    # The context is free again for the next request.
    assert list(llama.stream(MESSAGES, threading.Event()))


def test_bad_model_paths_are_reported(tmp_path: Path) -> None:
    need("llama_cpp")
    with pytest.raises(EngineError, match=r"not a \.gguf file; for a hub repo also set 'filename'"):
        LlamaCppLLM(str(tmp_path / "missing.gguf"))
    broken = tmp_path / "broken.gguf"
    broken.write_bytes(b"GGUF not really")
    with pytest.raises(EngineError, match="could not load GGUF model"):
        LlamaCppLLM(str(broken))


def test_a_request_cancelled_while_waiting_for_the_model_never_starts(llama: LlamaCppLLM, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 13: dropped speculative replies queued on the model's lock, then each evaluated its prompt."""
    started: list[int] = []
    real = llama._llama.create_chat_completion

    def counting(*args: object, **kwargs: object) -> object:
        started.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(llama._llama, "create_chat_completion", counting)
    holder = llama.stream(MESSAGES, threading.Event())
    next(holder)  # holds the model
    cancel = threading.Event()
    result: list[list[str]] = []
    waiter = threading.Thread(target=lambda: result.append(list(llama.stream(MESSAGES, cancel))))
    waiter.start()
    cancel.set()
    waiter.join(5)
    assert not waiter.is_alive() and result == [[]]
    holder.close()
    assert started == [1]  # only the holder's request reached llama.cpp
    assert list(llama.stream(MESSAGES, threading.Event()))  # and the model is free again


def test_a_conversation_longer_than_the_context_leaves_its_oldest_turns_out(llama: LlamaCppLLM, caplog: pytest.LogCaptureFixture) -> None:
    """SmolLM2's 2048 tokens: a long talk (or a long system prompt) made llama.cpp refuse every later turn."""
    story = "The lighthouse keeper counted the ships that passed the rocks at night, one by one, until dawn. " * 8
    history = [message for n in range(30) for message in ({"role": "user", "content": f"{n}. {story}"}, {"role": "assistant", "content": story})]
    messages = [MESSAGES[0], *history, MESSAGES[1]]
    with caplog.at_level("INFO", logger="speechlm_demo.engines.cascade.llm"):
        reply = "".join(llama.stream(messages, threading.Event(), temperature=0.0))
    assert reply.strip() and "oldest message(s) out" in caplog.text


def test_a_system_prompt_too_long_for_the_context_says_so(llama: LlamaCppLLM) -> None:
    long_prompt = "Always answer politely, briefly and in plain words, as a friendly assistant would. " * 150
    with pytest.raises(EngineError, match=r"the system prompt and the words heard take ~\d+ tokens; .* shorten the system prompt"):
        list(llama.stream([{"role": "system", "content": long_prompt}, MESSAGES[1]], threading.Event()))


def test_a_reply_budget_as_large_as_the_context_still_answers() -> None:
    """``max_tokens`` >= ``n_ctx`` worked before (llama.cpp shortens the reply); holding it all for the reply
    must not refuse every prompt."""
    need("llama_cpp")
    llm = build_llm({"kind": "llama-cpp", "model": "offline", "n_ctx": 512, "max_tokens": 512})
    assert isinstance(llm, LlamaCppLLM)
    assert "".join(llm.stream(MESSAGES, threading.Event(), temperature=0.0, seed=1)).strip()
