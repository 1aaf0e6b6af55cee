"""The seeds' cascade row (Whisper + an OpenAI-compatible LLM at OLLAMA_URL + Piper) and the LLM URL variable."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.benchmarks.prompt_sets import speak
from speechlm_demo.catalog import load_catalog
from speechlm_demo.engines.base import AudioOut, EngineError, SessionOptions, TextOut, UserTurn
from speechlm_demo.engines.cascade.llm import build_llm
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.hardware import simulated_host
from speechlm_demo.timeline import Timeline
from tests.conftest import require
from tests.qwen.fake_vllm_omni import FakeServer


def test_llm_url_from_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    config = {"kind": "openai", "base_url_env": "OLLAMA_URL", "base_url": "http://127.0.0.1:11434/v1", "model": "llama3.2:3b"}
    monkeypatch.setenv("OLLAMA_URL", "http://gpu-box:11434/v1")
    assert build_llm(config).url == "http://gpu-box:11434/v1/chat/completions"  # type: ignore[attr-defined]
    monkeypatch.delenv("OLLAMA_URL")
    assert build_llm(config).url == "http://127.0.0.1:11434/v1/chat/completions"  # type: ignore[attr-defined]
    with pytest.raises(EngineError, match="set OLLAMA_URL"):
        build_llm({"kind": "openai", "base_url_env": "OLLAMA_URL", "model": "m"})


@pytest.mark.slow
def test_seed_cascade_row_against_an_openai_compatible_server(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed")
    fake.state.profile = "vllm"
    monkeypatch.setenv("OLLAMA_URL", fake.url + "/v1")
    catalog = load_catalog()
    entry = catalog.get("cascade-ollama")
    llm = {**entry.defaults["llm"], "model": fake.state.model}
    catalog.engines[catalog.engines.index(entry)] = entry.model_copy(update={"defaults": {**entry.defaults, "llm": llm}})
    registry = EngineRegistry(catalog, simulated_host("cpu"))
    require(None if registry.availability["cascade-ollama"].available else registry.availability["cascade-ollama"].reason)
    engine = registry.get("cascade-ollama")
    audio = np.concatenate([speak("What is the capital of France?", 16_000), np.zeros(4000, np.float32)])
    events = list(engine.respond(UserTurn(1, audio, 16_000, Timeline(1)), [], SessionOptions()))  # type: ignore[attr-defined]
    said = [e.text for e in events if isinstance(e, TextOut) and e.role == "agent"]
    heard = [e.text for e in events if isinstance(e, TextOut) and e.role == "user"]
    assert "france" in heard[0].lower() and " ".join(said).startswith("You said:")
    assert max(rms_dbfs(e.pcm) for e in events if isinstance(e, AudioOut)) > -40
    chat = fake.state.requests[-1]
    assert chat["model"] == fake.state.model and chat["messages"][-1]["content"] == heard[0]
    registry.close()
