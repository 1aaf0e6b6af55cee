"""Compare (speechlm_demo.compare) of Qwen2.5-Omni over vLLM-Omni (the fake server) against the offline cascade."""

from __future__ import annotations

import functools
import shutil

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.benchmarks.prompt_sets import speak
from speechlm_demo.catalog import load_catalog
from speechlm_demo.compare import compare
from speechlm_demo.engines.registry import EngineRegistry
from speechlm_demo.hardware import simulated_host
from speechlm_demo.recorder import RecordedTurn
from speechlm_demo.ui.compare_tab import run_comparison
from tests.conftest import require
from tests.qwen.fake_vllm_omni import FakeServer


@pytest.mark.slow
def test_compare_qwen_omni_with_the_cascade(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    require(None if shutil.which("espeak-ng") else "espeak-ng is not installed")
    monkeypatch.setenv("VLLM_OMNI_URL", fake.url)
    registry = EngineRegistry(load_catalog(), simulated_host("cpu"))
    require(None if registry.availability["cascade"].available else registry.availability["cascade"].reason)
    question = np.concatenate([speak("What is the capital of France?", 16_000), np.zeros(8000, np.float32)])
    result = compare(
        functools.partial(registry.get, "qwen2.5-omni-vllm"), functools.partial(registry.get, "cascade"), question, 16_000, timeout_s=60
    )
    qwen, cascade = result.a, result.b
    assert qwen.ok, qwen.message
    assert qwen.reply_text.startswith("I heard") and qwen.sample_rate == 24_000 and rms_dbfs(qwen.audio) > -25
    marks = qwen.timeline["marks_ms"]
    assert marks["request_sent"] <= marks["first_text"] < marks["first_audio_in"] <= marks["first_audio_out"]
    assert cascade.ok, cascade.message
    assert "france" in cascade.user_text.lower() and len(cascade.audio) and rms_dbfs(cascade.audio) > -40
    # the Compare tab's own function, with a system prompt for both
    *_, final = run_comparison(registry, RecordedTurn(1, question, 16_000), "qwen2.5-omni-vllm", "cascade", "Be brief.", "Ethan")
    status, summary_a, audio_a, _heard_a, reply_a, summary_b, audio_b, *_ = final
    assert status.startswith("Done") and reply_a.startswith("I heard") and "voice-to-voice" in summary_a
    assert audio_a[0] == 24_000 and len(audio_a[1]) and audio_b is not None and "voice-to-voice" in summary_b
    assert fake.state.requests[-1]["messages"][0]["content"].endswith("\n\nBe brief.") and fake.state.requests[-1]["speaker"] == "Ethan"
    # a failing server fails only its own side
    fake.state.scenario = "http_500"
    result = compare(registry.get("qwen2.5-omni-vllm"), registry.get("cascade"), question, 16_000, timeout_s=60)
    assert result.a.status == "failed" and "HTTP 500" in result.a.message and result.b.ok
    registry.close()
