"""Mini-Omni / Mini-Omni2 clients against byte-faithful fakes of their Flask servers."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from speechlm_demo.audio import rms_dbfs
from speechlm_demo.compare import answer
from speechlm_demo.engines.base import AudioOut, ErrorEvent, SessionOptions, TextOut
from speechlm_demo.engines.mini_omni.client import MiniOmniEngine, _multipart_events, _pcm_events
from speechlm_demo.engines.mini_omni.protocol import MultipartReader, PcmAssembler, ProtocolError
from speechlm_demo.engines.server_client import ServerFailure

from .conftest import (
    barge_in_while_quiet,
    client_entry,
    quiet_message,
    quiet_turn_then_next,
    speech,
    user_turn,
    with_echo_fallback,
)
from .fake_mini_omni import FakeMiniOmni

CLASS = "speechlm_demo.engines.mini_omni.client:MiniOmniEngine"


def engine_for(url: str, variant: str = "mini-omni", fallback: bool = False, **defaults) -> MiniOmniEngine:
    defaults = {"read_timeout_s": 3, **defaults}
    engine = MiniOmniEngine(client_entry(variant, CLASS, (16_000, 24_000), variant=variant, url=url, url_env="", fallback="echo" if fallback else None, **defaults))
    if fallback:
        with_echo_fallback(engine)
    engine.load()
    return engine


def test_pcm_assembler_keeps_an_odd_byte_for_the_next_chunk() -> None:
    pcm = PcmAssembler()
    data = (np.array([1000, -2000, 3000], "<i2")).tobytes()
    first = pcm.feed(data[:3])
    second = pcm.feed(data[3:])
    assert len(first) == 1 and len(second) == 2 and not pcm.dangling
    assert np.allclose(np.concatenate([first, second]) * 32768, [1000, -2000, 3000])


def test_multipart_reader_splits_parts_anywhere_and_keeps_the_unterminated_last_part() -> None:
    stream = b"\r\n--frame\r\nContent-Type: audio/wav\r\n\r\n\x01\x02\x03\x04\r\n--frame\r\nContent-Type: text/plain\r\n\r\nHi"
    reader = MultipartReader()
    parts = []
    for i in range(len(stream)):
        parts += reader.feed(stream[i : i + 1])
    parts += reader.finish()
    assert parts == [("audio/wav", b"\x01\x02\x03\x04"), ("text/plain", b"Hi")]


@pytest.mark.parametrize("garbage", [b"<html>oops</html>", b"\r\n--frame\r\nno headers here", b"\r\n--frame\r\nContent-Type: image/png\r\n\r\nx\r\n--frame\r\n"])
def test_multipart_reader_refuses_garbage(garbage: bytes) -> None:
    reader = MultipartReader()
    with pytest.raises(ProtocolError):
        reader.feed(garbage)
        reader.finish()


@pytest.mark.parametrize("variant", ["mini-omni", "mini-omni2"])
def test_a_turn_streams_24khz_audio_and_mini_omni2_text(variant: str, options: SessionOptions) -> None:
    fake = FakeMiniOmni(variant, chunks=4, chunk_s=0.2)
    with fake as url:
        engine = engine_for(url, variant)
        events = list(engine.respond(user_turn(1.0), [], options))
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert sum(e.duration_s for e in audio) == pytest.approx(0.8, abs=0.01)
    assert all(e.sample_rate == 24_000 for e in audio) and rms_dbfs(np.concatenate([e.pcm for e in audio])) > -20
    final = [e.text for e in events if isinstance(e, TextOut) and e.final]
    assert final == (["Paris is the capital."] if variant == "mini-omni2" else [])
    sent = fake.received[0]
    assert sent["stream_stride"] == 4 and sent["max_tokens"] == 2048 and sent["rate"] == 16_000
    assert sent["audio_s"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize("variant", ["mini-omni", "mini-omni2"])
def test_upstream_http_500_is_a_clear_failure(variant: str, options: SessionOptions) -> None:
    with FakeMiniOmni(variant, behaviour="error") as url:
        engine = engine_for(url, variant)
        with pytest.raises(ServerFailure, match="refused the turn: HTTP 500"):
            list(engine.respond(user_turn(), [], options))


def test_garbage_answer_is_a_clear_failure(options: SessionOptions) -> None:
    with FakeMiniOmni("mini-omni", behaviour="garbage") as url:
        engine = engine_for(url)
        with pytest.raises(ServerFailure, match="text/html"):
            list(engine.respond(user_turn(), [], options))


def test_a_busy_server_is_named_busy(options: SessionOptions) -> None:
    fake = FakeMiniOmni("mini-omni", behaviour="hang")
    with fake as url:
        engine = engine_for(url, read_timeout_s=1)
        first_failure: list[str] = []

        def first() -> None:
            try:
                list(engine.respond(user_turn(), [], options))
            except ServerFailure as exc:  # cut when the fake closes
                first_failure.append(str(exc))

        blocker = threading.Thread(target=first, daemon=True)
        blocker.start()
        with pytest.raises(ServerFailure, match="busy or hung.*one request at a time"):
            list(engine.respond(user_turn(), [], options))
        fake.release.set()
    blocker.join(5)


@pytest.mark.parametrize(("variant", "behaviour"), [("mini-omni", "hang"), ("mini-omni", "stall"), ("mini-omni2", "stall")])
def test_a_barge_in_while_the_server_is_quiet_ends_the_turn_at_once(variant: str, behaviour: str, options: SessionOptions) -> None:
    """Without a failure (a stream cut by the cancel is not a broken one: the server stays healthy). The next turn
    then waits for the server (one request at a time) until the quiet one is let go."""
    fake = FakeMiniOmni(variant, behaviour=behaviour, chunks=4, chunk_s=0.2)
    with fake as url:
        engine = engine_for(url, variant, read_timeout_s=8, health_backoff_s=0.01)
        _, again = barge_in_while_quiet(engine, fake, options, resume=fake.resume)
    assert sum(e.duration_s for e in again if isinstance(e, AudioOut)) == pytest.approx(0.8, abs=0.01)


def test_a_stream_cut_by_a_cancel_is_not_a_broken_one() -> None:
    """Half a sample or half a part at the end is the server's fault only when the stream ended by itself."""
    cut_pcm, cut_part = [b"\x01\x02\x03"], [b"\r\n--frame\r\nContent-Type: audio/wav\r\n\r\n\x00\x01\x02"]
    cancelled = threading.Event()
    cancelled.set()
    assert len(list(_pcm_events(iter(cut_pcm), cancelled))) == 1 and list(_multipart_events(iter(cut_part), cancelled)) == []
    with pytest.raises(ProtocolError, match="middle of a 16-bit sample"):
        list(_pcm_events(iter(cut_pcm), threading.Event()))
    with pytest.raises(ProtocolError, match="3 bytes is not 16-bit PCM"):
        list(_multipart_events(iter(cut_part), threading.Event()))


def test_a_reply_that_stalls_midway_ends_at_the_read_timeout_and_the_next_turn_is_answered(options: SessionOptions) -> None:
    """Two steps of audio, then nothing on an open connection: the turn ends read_timeout_s after the last
    byte, saying so, with what came already played; once the server goes on, the next turn is answered."""
    fake = FakeMiniOmni("mini-omni", behaviour="stall", chunks=4, chunk_s=0.2)
    with fake as url:
        engine = engine_for(url, read_timeout_s=1, health_backoff_s=0.01)
        events, again = quiet_turn_then_next(engine, fake, quiet_message("mini-omni", "stall"), options, resume=fake.resume)
    assert sum(e.duration_s for e in events if isinstance(e, AudioOut)) == pytest.approx(0.4, abs=0.01)
    assert sum(e.duration_s for e in again if isinstance(e, AudioOut)) == pytest.approx(0.8, abs=0.01)


def test_a_reply_cut_short_by_a_crash_still_plays_what_came(options: SessionOptions) -> None:
    """Upstream quirk: HTTP/1.0 without Content-Length, so a crash mid-reply looks like its end."""
    with FakeMiniOmni("mini-omni", behaviour="die", chunks=4, chunk_s=0.2) as url:
        engine = engine_for(url)
        events = list(engine.respond(user_turn(), [], options))
    assert sum(e.duration_s for e in events if isinstance(e, AudioOut)) == pytest.approx(0.4, abs=0.01)


def test_a_down_server_is_answered_by_the_fallback_and_marked(options: SessionOptions) -> None:
    fake = FakeMiniOmni("mini-omni")
    with fake as url:
        engine = engine_for(url, fallback=True)
    events = list(engine.respond(turn := user_turn(), [], options))  # the server is gone now
    assert turn.timeline.extra["answered_by"] == "echo"
    assert "unreachable" in turn.timeline.extra["fallback_reason"]
    errors = [e.message for e in events if isinstance(e, ErrorEvent)]
    assert len(errors) == 1 and "Echo answers instead" in errors[0]
    assert next(e.text for e in events if isinstance(e, TextOut)).startswith("[echo]")
    assert any(isinstance(e, AudioOut) for e in events)
    again = list(engine.respond(second := user_turn(turn_id=2), [], options))
    assert second.timeline.extra["answered_by"] == "echo"
    assert not [e for e in again if isinstance(e, ErrorEvent)], "the session is told once"


def test_through_the_turn_layer_marks_are_in_order() -> None:
    with FakeMiniOmni("mini-omni2", chunks=4, chunk_s=0.2) as url:
        engine = engine_for(url, "mini-omni2", end_silence_ms=300)
        result = answer(engine, speech(1.0), 16_000, timeout_s=10, tail_s=1.5)
    assert result.ok, result.message
    marks = result.timeline["marks_ms"]
    order = [name for name in ("user_speech_end", "turn_detected", "first_audio_out", "last_audio_out") if name in marks]
    assert order == ["user_speech_end", "turn_detected", "first_audio_out", "last_audio_out"]
    assert list(marks).index("turn_detected") < list(marks).index("first_audio_out") < list(marks).index("last_audio_out")
    assert result.reply_text == "Paris is the capital." and len(result.audio) > 0.7 * result.sample_rate
