"""LLaMA-Omni2 client against a fake controller/worker; the unit decoder is a recording stand-in
(LLaMA-Omni2's CosyVoice2 decoder needs its checkout, torch and CUDA: not runnable here)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

from speechlm_demo.engines.base import AudioOut, EngineError, ErrorEvent, SessionOptions, TextOut
from speechlm_demo.engines.llama_omni2.client import LlamaOmni2Engine
from speechlm_demo.engines.llama_omni2.protocol import FrameReader, ProtocolError
from speechlm_demo.engines.server_client import ServerFailure, new_suffix

from .conftest import (
    barge_in_while_quiet,
    client_entry,
    quiet_message,
    quiet_turn_then_next,
    user_turn,
    with_echo_fallback,
)
from .fake_llama_omni2 import SERVER_ERROR_MSG, FakeLlamaOmni2
from .serving import FakeHTTPServer

CLASS = "speechlm_demo.engines.llama_omni2.client:LlamaOmni2Engine"


class RecordingVocoder:
    """Stands in for CosyVoice2's flow + HiFT: 40 ms of tone per unit, and a log of what it was fed."""

    codes = 6561

    def __init__(self) -> None:
        self.calls: list[tuple[list[int], bool]] = []

    def start(self) -> Any:
        return {"fed": 0}

    def feed(self, units: list[int], state: Any, finalize: bool) -> tuple[np.ndarray, Any]:
        self.calls.append((list(units), finalize))
        t = np.arange(len(units) * 960) / 24_000
        return (0.3 * np.sin(2 * np.pi * 250 * t)).astype(np.float32), {"fed": state["fed"] + len(units)}


def engine_for(url: str, fallback: bool = False, vocoder: RecordingVocoder | None = None, **defaults) -> LlamaOmni2Engine:
    defaults = {"read_timeout_s": 3, **defaults}
    engine = LlamaOmni2Engine(client_entry("llama-omni2", CLASS, (16_000, 24_000), url=url, url_env="", fallback="echo" if fallback else None, **defaults))
    engine.vocoder = vocoder
    if fallback:
        with_echo_fallback(engine)
    engine.load()
    return engine


def test_frames_split_anywhere() -> None:
    stream = b'{"text": "Hi", "unit": "1 2", "finalize": false, "error_code": 0}\0{"text": "Hi there", "unit": "1 2 3", "finalize": true, "error_code": 0}\0'
    reader = FrameReader()
    frames = [f for i in range(len(stream)) for f in reader.feed(stream[i : i + 1])]
    assert [(f.text, f.units, f.finalize) for f in frames] == [("Hi", [1, 2], False), ("Hi there", [1, 2, 3], True)]
    assert new_suffix("Hi", "Hi there") == " there" and new_suffix("Hello", "Help") == "Help"
    with pytest.raises(ProtocolError):
        FrameReader().feed(b"<html>\0")


def test_text_only_turns_keep_a_history_the_worker_can_read(options: SessionOptions) -> None:
    fake = FakeLlamaOmni2()
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url)
        history: list[dict] = []
        first = list(engine.respond(user_turn(1.0), history, options))
        second = list(engine.respond(user_turn(1.0, turn_id=2), history, options))
        engine.close()
    notes = [e.message for e in first if isinstance(e, ErrorEvent)]
    assert len(notes) == 1 and "text only" in notes[0] and not [e for e in second if isinstance(e, ErrorEvent)]
    assert [e.text for e in first if isinstance(e, TextOut) and e.final] == ["The capital of France is Paris."]
    assert not [e for e in first if isinstance(e, AudioOut)]
    request = fake.requests[1]
    assert request["model"] == "LLaMA-Omni2-7B-Bilingual" and request["max_new_tokens"] == 512
    assert len(request["history"]) == 4  # user, assistant text, assistant audio placeholder, this turn
    assert request["history"][1] == {"role": "assistant", "content": "The capital of France is Paris."}


def test_units_go_to_the_vocoder_incrementally_and_audio_comes_out(options: SessionOptions) -> None:
    vocoder = RecordingVocoder()
    with FakeHTTPServer(FakeLlamaOmni2().app) as url:
        engine = engine_for(url, vocoder=vocoder)
        events = list(engine.respond(user_turn(), [], options))
        engine.close()
    fed = [u for units, _ in vocoder.calls for u in units]
    assert len(fed) == 8 * 25 and vocoder.calls[-1][1] is True and not any(f for _, f in vocoder.calls[:-1])
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert sum(e.duration_s for e in audio) == pytest.approx(8 * 25 * 0.04) and all(e.sample_rate == 24_000 for e in audio)
    assert not [e for e in events if isinstance(e, ErrorEvent)]


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("worker_error", "error_code 1: the model worker failed\\): \\*\\*NETWORK ERROR"),
        ("no_worker", "error_code 2: the controller has no worker"),
        ("garbage", "not its reply format"),
        ("die", "broke off"),
    ],
)
def test_server_faults_are_clear(behaviour: str, message: str, options: SessionOptions) -> None:
    with FakeHTTPServer(FakeLlamaOmni2(behaviour).app) as url:
        engine = engine_for(url)
        with pytest.raises(ServerFailure, match=message):
            list(engine.respond(user_turn(), [], options))
        engine.close()
    assert SERVER_ERROR_MSG


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [("off_codebook", "unit id 1000000 is past the unit decoder's 6561 \\(0-6560\\)"), ("negative_unit", "unit id -7 is negative")],
)
def test_unit_ids_the_decoder_cannot_take_fail_the_turn_before_reaching_it(behaviour: str, message: str, options: SessionOptions) -> None:
    """A garbage id would index the decoder's embedding (IndexError here, a sticky device-side assert on CUDA)."""
    vocoder = RecordingVocoder()
    with FakeHTTPServer(FakeLlamaOmni2(behaviour).app) as url:
        engine = engine_for(url, vocoder=vocoder)
        with pytest.raises(ServerFailure, match="not its reply format: " + message):
            list(engine.respond(user_turn(), [], options))
        engine.close()
    assert vocoder.calls and all(0 <= unit < 6561 for units, _ in vocoder.calls for unit in units)


def test_a_garbled_frame_fails_the_turn_clearly_and_the_next_turn_works(options: SessionOptions) -> None:
    fake = FakeLlamaOmni2("garbled_frame")
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, health_backoff_s=0.01)
        with pytest.raises(ServerFailure, match="not its reply format: error_code is not an integer: 'none'"):
            list(engine.respond(user_turn(), [], options))
        fake.behaviour = "answer"
        time.sleep(0.05)  # the back-off after the failure
        events = list(engine.respond(user_turn(turn_id=2), [], options))
        engine.close()
    assert [e.text for e in events if isinstance(e, TextOut) and e.final] == ["The capital of France is Paris."]


@pytest.mark.parametrize("behaviour", ["silent", "stall"])
def test_a_barge_in_while_the_server_is_quiet_ends_the_turn_at_once(behaviour: str, options: SessionOptions) -> None:
    fake = FakeLlamaOmni2(behaviour, stall_s=4.0)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, read_timeout_s=8, health_backoff_s=0.01)
        _, second = barge_in_while_quiet(engine, fake, options)
        engine.close()
    assert [e.text for e in second if isinstance(e, TextOut) and e.final] == ["The capital of France is Paris."]


@pytest.mark.parametrize(("behaviour", "partial"), [("silent", ""), ("stall", "The capital of")])
def test_a_server_that_goes_quiet_ends_the_turn_at_the_read_timeout_and_the_next_turn_works(
    behaviour: str, partial: str, options: SessionOptions
) -> None:
    """Silent before the first byte (a busy worker) or mid-reply (three frames, then nothing on an open
    connection): the turn ends read_timeout_s after the last byte, saying which; the next turn is answered."""
    fake = FakeLlamaOmni2(behaviour)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, read_timeout_s=1, health_backoff_s=0.01)
        events, second = quiet_turn_then_next(engine, fake, quiet_message("llama-omni2", behaviour), options)
        engine.close()
    assert "".join(e.text for e in events if isinstance(e, TextOut)) == partial
    assert [e.text for e in second if isinstance(e, TextOut) and e.final] == ["The capital of France is Paris."]


def test_a_garbled_model_list_is_explained_and_the_server_is_used_once_it_is_right(options: SessionOptions) -> None:
    fake = FakeLlamaOmni2("garbled_models")  # "models": "LLaMA-Omni2-7B-Bilingual", a string holding the name
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, fallback=True, health_backoff_s=0.01)
        turn = user_turn()
        first = list(engine.respond(turn, [], options))
        fake.behaviour = "answer"
        time.sleep(0.05)
        second = list(engine.respond(user_turn(turn_id=2), [], options))
        engine.close()
    notice = [e.message for e in first if isinstance(e, ErrorEvent)]
    assert turn.timeline.extra["answered_by"] == "echo" and "without a list of model names in 'models'" in notice[0]
    assert [e.text for e in second if isinstance(e, TextOut) and e.final] == ["The capital of France is Paris."]


def test_a_model_the_controller_does_not_serve_is_named_at_load() -> None:
    served = "serves \\['LLaMA-Omni2-0.5B'\\], not 'LLaMA-Omni2-7B-Bilingual'"
    with FakeHTTPServer(FakeLlamaOmni2(model="LLaMA-Omni2-0.5B").app) as url, pytest.raises(ServerFailure, match=served):
        engine_for(url)


def test_killed_mid_conversation_the_next_turn_is_the_fallbacks(options: SessionOptions) -> None:
    server = FakeHTTPServer(FakeLlamaOmni2().app)
    with server as url:
        engine = engine_for(url, fallback=True)
        history: list[dict] = []
        list(engine.respond(user_turn(), history, options))
        server.kill()
        turn = user_turn(turn_id=2)
        events = list(engine.respond(turn, history, options))
        engine.close()
    assert turn.timeline.extra["answered_by"] == "echo" and "unreachable" in turn.timeline.extra["fallback_reason"]
    assert any(isinstance(e, AudioOut) for e in events)


def test_talking_to_one_worker_without_the_controller(options: SessionOptions) -> None:
    fake = FakeLlamaOmni2()
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, via_controller=False)
        events = list(engine.respond(user_turn(), [], options))
        engine.close()
    assert [e.text for e in events if isinstance(e, TextOut) and e.final] == ["The capital of France is Paris."]


def test_a_custom_unit_decoder_must_say_how_many_unit_ids_it_takes() -> None:
    from speechlm_demo.engines.llama_omni2.vocoder import load_vocoder

    assert load_vocoder(f"{__name__}:recording_vocoder", "", "", "cpu").codes == 6561
    with pytest.raises(EngineError, match="says no `codes`"):
        load_vocoder(f"{__name__}:vocoder_without_codes", "", "", "cpu")


def recording_vocoder(**_: Any) -> RecordingVocoder:
    return RecordingVocoder()


def vocoder_without_codes(**_: Any) -> object:
    return object()
