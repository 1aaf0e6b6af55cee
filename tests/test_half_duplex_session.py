"""The half-duplex session around the turn detector: replies started, committed, dropped or interrupted; engine
crash and hang, barge-in, early commits (transcript, likely pauses, the silence floor), echo end to end."""

from __future__ import annotations

import time

import numpy as np
import pytest

from speechlm_demo.audio import chunks, rms_dbfs
from speechlm_demo.engines.base import AudioOut, ErrorEvent, Interrupt, SessionOptions, TextOut, TurnEnd
from speechlm_demo.engines.echo import EchoEngine
from speechlm_demo.turntaking.half_duplex import HalfDuplexSession
from tests.engines_for_tests import Recorder, ScriptedEngine, WordsSettings, entry, silence, tone
from tests.test_turn_detector import EARLY, RATE, LaggingLevelVAD, windows


def feed(session, audio: np.ndarray, realtime: bool = False) -> None:
    started = time.monotonic()
    for index, piece in enumerate(chunks(audio, 320)):
        if realtime:
            time.sleep(max(0.0, started + index * 0.02 - time.monotonic()))
        session.push_audio(piece)


def test_echo_session_end_to_end_marks_in_order() -> None:
    engine = EchoEngine(entry("echo"))
    rec = Recorder(engine)
    session = engine.open_session(SessionOptions(), rec)
    feed(session, np.concatenate([silence(0.3), tone(0.8), silence(0.8)]))
    (end,) = rec.wait_for(TurnEnd)
    audio = np.concatenate([e.pcm for e in rec.of(AudioOut)])
    # the tone and the 0.1 s tail; the 0.3 s pre-roll of silence is not played back (it would delay the echo)
    assert rms_dbfs(audio) > -20 and len(audio) / RATE == pytest.approx(0.95, abs=0.1)
    roles = [e.role for e in rec.of(TextOut)]
    assert roles == ["agent"]  # echo has no ASR
    marks = end.timeline.marks
    order = ["user_speech_start", "user_speech_end", "turn_detected", "first_audio_out", "last_audio_out"]
    assert [marks[m] for m in order] == sorted(marks[m] for m in order)
    assert end.timeline.status == "ok"
    session.close()


def test_crashing_engine_fails_the_turn_and_the_session_goes_on() -> None:
    engine = ScriptedEngine(entry(), behaviour="crash")
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    feed(session, np.concatenate([tone(0.5), silence(0.6)]))
    (end,) = rec.wait_for(TurnEnd)
    assert end.timeline.status == "failed" and "model exploded" in end.timeline.detail
    assert any("model exploded" in e.message for e in rec.of(ErrorEvent))
    engine.behaviour = "answer"
    feed(session, np.concatenate([tone(0.5), silence(0.6)]))
    ends = rec.wait_for(TurnEnd, 2)
    assert ends[1].timeline.status == "ok" and engine.turns_seen == [1, 2]


def test_hung_engine_times_out_and_later_turns_work() -> None:
    engine = ScriptedEngine(entry(reply_timeout_s=0.5), behaviour="hang")
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    feed(session, np.concatenate([tone(0.5), silence(0.6)]))
    (end,) = rec.wait_for(TurnEnd, timeout=5)
    assert end.timeline.status == "failed" and "did not finish within 0.5 s" in end.timeline.detail
    engine.behaviour = "answer"
    engine.release.set()
    feed(session, np.concatenate([tone(0.5), silence(0.6)]))
    assert rec.wait_for(TurnEnd, 2)[1].timeline.status == "ok"


def test_barge_in_interrupts_the_reply() -> None:
    engine = ScriptedEngine(entry(), behaviour="answer")
    engine.chunks, engine.delay_s = 50, 0.05  # a 5 s reply produced over 2.5 s
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    feed(session, np.concatenate([tone(0.5), silence(0.6)]))
    rec.wait_for(AudioOut)
    started = time.monotonic()
    seen: list[float] = []
    original = rec.__call__

    def stamp(event) -> None:
        if isinstance(event, Interrupt):
            seen.append(time.monotonic())
        original(event)

    session.emit = stamp
    feed(session, tone(0.3), realtime=True)  # the user talks over the reply, in real time
    (interrupt,) = rec.wait_for(Interrupt)
    assert seen[0] - started < 0.2  # playback is told to stop within 200 ms of the user's first sound
    assert interrupt.turn_id == 1
    assert rec.wait_for(TurnEnd)[0].timeline.status == "interrupted"
    time.sleep(0.2)
    produced = len(rec.of(AudioOut))
    time.sleep(0.3)
    assert len(rec.of(AudioOut)) == produced < 50  # generation stopped
    session.close()


class QuietEngine(ScriptedEngine):
    """Replies with 3 s of audio at -50 dBFS: heard or not depending on the entry's ``audible_dbfs``."""

    chunks = 30

    def respond(self, turn, history, options):
        for _ in range(self.chunks):
            yield AudioOut(tone(self.chunk_s, level=0.0045, freq=440.0), 16_000)


@pytest.mark.parametrize("audible_dbfs, heard", [(-40.0, False), (-60.0, True)])
def test_barge_in_counts_only_reply_audio_the_observer_hears(audible_dbfs: float, heard: bool) -> None:
    engine = QuietEngine(entry(audible_dbfs=audible_dbfs))
    rec = Recorder(engine)
    session = engine.open_session(SessionOptions(), rec)
    feed(session, np.concatenate([tone(0.5), silence(0.6)]))
    (end,) = rec.wait_for(TurnEnd)
    assert ("first_audio_out" in end.timeline.marks) is heard  # the observer's verdict on the quiet reply
    feed(session, np.concatenate([tone(0.5), silence(0.6)]))  # at once: 3 s of the reply are still "playing"
    rec.wait_for(TurnEnd, 2)
    assert bool(rec.of(Interrupt)) is heard  # barge-in only over audio that is heard
    session.close()


def test_speculative_reply_is_dropped_when_the_user_goes_on() -> None:
    engine = ScriptedEngine(entry(end_silence_ms=600))
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    feed(session, np.concatenate([tone(0.5), silence(0.35), tone(0.5), silence(0.9)]))
    (end,) = rec.wait_for(TurnEnd)
    time.sleep(0.2)
    assert len(rec.of(TurnEnd)) == 1 and len(engine.turns_seen) >= 2  # a speculative start was thrown away
    assert len(rec.of(AudioOut)) == engine.chunks  # nothing of the dropped attempt leaked out
    assert end.timeline.turn_id == 1
    assert session.history == [{"role": "assistant", "content": "turn 1"}]  # the dropped attempt left no memory
    assert end.timeline.between_ms("user_speech_start", "user_speech_end") == pytest.approx(1350, abs=60)


class TranscribingEngine(ScriptedEngine):
    """Reports a fixed transcript first, like an ASR stage would."""

    Settings = WordsSettings
    transcript = "What is the capital of France?"
    confidence: float | None = None

    def respond(self, turn, history, options):
        yield TextOut(self.transcript, role="user", confidence=self.confidence)
        yield from super().respond(turn, history, options)


@pytest.mark.parametrize(
    "transcript, confidence, early, hold_statements",
    [
        ("What is the capital of France?", None, True, True),
        ("What is the capital of France?", 0.85, True, True),
        ("What do you think come out?", 0.31, False, True),  # misheard words do not end the turn early
        ("Well...", None, False, True),
        ("I need some advice.", None, False, True),  # a finished statement may be a lead-in: the long silence decides
        ("I need some advice.", None, True, False),
    ],
)
def test_transcript_judgement_commits_early_or_waits(
    transcript: str, confidence: float | None, early: bool, hold_statements: bool
) -> None:
    engine = TranscribingEngine(
        entry(endpointing="transcript", end_silence_ms=1200, hold_statements=hold_statements, min_transcript_confidence=0.5)
    )
    engine.transcript = transcript
    engine.confidence = confidence
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    feed(session, np.concatenate([tone(0.5), silence(1.5)]), realtime=True)
    (end,) = rec.wait_for(TurnEnd)
    detect_ms = end.timeline.between_ms("user_speech_end", "turn_detected")
    if early:
        assert detect_ms < 400 and end.timeline.extra["committed_by"] == "transcript"
    else:
        assert detect_ms >= 1100 and end.timeline.extra["committed_by"] == "silence"
    assert [e.role for e in rec.of(TextOut)] == ["user", "agent"]
    assert end.timeline.extra.get("transcript_confidence") == confidence


class SlowTranscribingEngine(TranscribingEngine):
    """Its transcript comes 0.3 s after the pause, like a real ASR's."""

    def respond(self, turn, history, options):
        time.sleep(0.3)
        yield from super().respond(turn, history, options)


def test_voice_heard_since_the_pause_holds_a_complete_transcript_until_it_proves_a_blip() -> None:
    engine = SlowTranscribingEngine(entry(endpointing="transcript", end_silence_ms=1000))
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    # a word too short to be a resumption comes while the transcript of the first part is being made
    feed(session, np.concatenate([tone(0.5), silence(0.4), tone(0.032), silence(1.4)]), realtime=True)
    (end,) = rec.wait_for(TurnEnd)
    assert end.timeline.extra["judged_complete"] is True
    assert end.timeline.extra["committed_by"] == "transcript"
    # committed once the blip was over (90 ms of silence after it), not at the 1 s silence rule
    assert 450 < end.timeline.between_ms("user_speech_end", "turn_detected") < 800


def test_the_silence_before_an_early_commit_counts_from_the_last_voice_heard_a_blip_included() -> None:
    # A VAD that half hears a weak syllable ("a" in "a joke about cats") reports a pause, two voiced windows too
    # short to resume the turn, and silence again: the user was not silent during those windows, so the floor
    # under an early commit (300 ms here) counts from their end, not from the voice before them.
    engine = TranscribingEngine(entry(endpointing="transcript", pause_ms=32, end_silence_ms=1500, min_commit_silence_ms=300))
    rec = Recorder()
    session = engine.open_session(SessionOptions(), rec)
    voice, gap, blip = tone(0.5), silence(0.1), tone(0.04)  # the blip: two voiced windows at most, under resume_ms
    feed(session, np.concatenate([voice, gap, blip, silence(1.0)]), realtime=True)
    (end,) = rec.wait_for(TurnEnd)
    assert end.timeline.extra["committed_by"] == "transcript"
    assert end.timeline.between_ms("user_speech_start", "user_speech_end") < 560  # the blip did not resume the turn
    after_blip_ms = end.timeline.between_ms("user_speech_end", "turn_detected") - 140  # gap + blip
    assert after_blip_ms >= 300 - 40  # the old rule committed 300 ms after the voice before the gap: ~160 ms after the blip


SESSION_WINDOW = RATE // 32  # the energy VAD's window in a session (Silero's is 512 samples)


def _early_session(engine: ScriptedEngine) -> tuple:
    rec = Recorder()
    return engine.open_session(SessionOptions(), rec), rec


def test_a_reply_started_at_a_likely_pause_is_kept_and_committed_once_confirmed() -> None:
    engine = TranscribingEngine(entry(endpointing="transcript", end_silence_ms=1200, **EARLY))
    session, rec = _early_session(engine)
    w = SESSION_WINDOW
    feed(session, np.concatenate([windows(16, silence, w), windows(31.4, size=w), windows(60, silence, w)]), realtime=True)
    (end,) = rec.wait_for(TurnEnd)
    assert engine.turns_seen == [1]  # the early start was not thrown away and redone at the VAD's pause
    assert end.timeline.extra["committed_by"] == "transcript"
    assert end.timeline.between_ms("user_speech_end", "reply_started") < 30
    assert end.timeline.between_ms("reply_started", "turn_detected") >= 25  # held until the VAD heard the pause
    assert len(rec.of(AudioOut)) == engine.chunks


def test_a_finished_sounding_transcript_at_a_dip_is_not_committed() -> None:
    engine = TranscribingEngine(entry(endpointing="transcript", end_silence_ms=1200, **EARLY))
    session, rec = _early_session(engine)
    # the (instant) transcript reads as finished at the dip, but the level comes back: no commit there
    w = SESSION_WINDOW
    dip = np.concatenate([windows(20.4, size=w), windows(0.6, silence, w), windows(20, size=w)])
    feed(session, np.concatenate([windows(16, silence, w), dip, windows(60, silence, w)]), realtime=True)
    (end,) = rec.wait_for(TurnEnd)
    time.sleep(0.2)
    assert len(rec.of(TurnEnd)) == 1 and engine.turns_seen == [1, 1]  # the dip's reply vanished
    assert end.timeline.between_ms("user_speech_start", "user_speech_end") == pytest.approx(41 * 31.25, abs=40)
    assert len(rec.of(AudioOut)) == engine.chunks  # nothing of the dropped attempt leaked out
    assert session.history == [{"role": "assistant", "content": "turn 1"}]


@pytest.mark.parametrize("floor_ms, cut", [(150.0, False), (0.0, True)])
def test_a_fast_finished_transcript_waits_for_the_silence_floor(floor_ms: float, cut: bool) -> None:
    engine = TranscribingEngine(entry(endpointing="transcript", end_silence_ms=1000, pause_ms=32, min_commit_silence_ms=floor_ms))
    session, rec = _early_session(engine)
    # "Who wrote Romeo | and Juliet?": a 120 ms gap between two words, the transcript is ready at once
    feed(session, np.concatenate([tone(0.6), silence(0.12), tone(0.4), silence(1.3)]), realtime=True)
    first = rec.wait_for(TurnEnd)[0]
    spoken_ms = first.timeline.between_ms("user_speech_start", "user_speech_end")
    assert spoken_ms == pytest.approx(600 if cut else 1120, abs=50)
    if not cut:
        assert 150 <= first.timeline.between_ms("user_speech_end", "turn_detected") < 400


def test_after_a_likely_pause_the_silence_counts_from_the_level_drop_not_from_the_vads_late_windows() -> None:
    # speech ends mid-window 48; the VAD (lagging one window, as Silero does) still calls window 49 voiced: only a
    # blip heard in the pause moves the start of the silence under an early commit, not the VAD's lag
    engine = TranscribingEngine(entry(endpointing="transcript", end_silence_ms=1200, min_commit_silence_ms=300.0, **EARLY))
    session = HalfDuplexSession(engine, SessionOptions(), Recorder(), vad=LaggingLevelVAD())
    feed(session, np.concatenate([windows(16, silence), windows(31.5), windows(2.5, silence)]))
    reply = session._reply
    assert reply is not None and reply.confirmed and not reply.committed
    assert reply.silence_ms() == pytest.approx(2.5 * 32, abs=0.1)  # from the level drop (counting from window 49: 32)
    session.close()


LEAD_IN = "Tell me about the moon."  # reads as a finished request: the transcript rule commits it
WHOLE = "Tell me about the moon and how far away it is."


class EarlyCutEngine(TranscribingEngine):
    """Hears the lead-in of a paused question as a finished sentence, the whole turn as the question."""

    def __init__(self, entry, device: str = "cpu") -> None:
        super().__init__(entry, device)
        self.heard: list[str] = []  # per reply: the history it was given, then its transcript

    def respond(self, turn, history, options):
        transcript = LEAD_IN if turn.duration_s < 1.2 else WHOLE
        self.heard.append(" ".join([m["content"] for m in history if m["role"] == "user"] + [transcript]))
        yield TextOut(transcript, role="user")
        history.append({"role": "user", "content": transcript})
        yield from ScriptedEngine.respond(self, turn, history, options)


def test_an_early_cut_continued_by_the_user_is_heard_once() -> None:
    """A paused question whose lead-in reads as complete: the reply to the lead-in commits early, the user goes on
    within the same turn; the next reply hears the whole turn once, not the lead-in again from the history."""
    engine = EarlyCutEngine(entry(endpointing="transcript", end_silence_ms=1300))
    engine.chunks = 2
    rec = Recorder(engine)
    session = engine.open_session(SessionOptions(), rec)
    feed(session, np.concatenate([tone(0.5), silence(0.9), tone(0.8), silence(1.6)]), realtime=True)
    ends = rec.wait_for(TurnEnd, 2)
    assert ends[0].timeline.extra["committed_by"] == "transcript"  # the early cut did happen
    assert engine.heard[0] == LEAD_IN and engine.heard[-1] == WHOLE  # the lead-in is in what it heard once
    assert session.history == [{"role": "user", "content": WHOLE}, {"role": "assistant", "content": "turn 2"}]
    assert [r.user_text for r in rec.records] == [LEAD_IN, WHOLE]
    session.close()
