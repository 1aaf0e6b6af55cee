"""Turn detection: speech start, pauses (likely, confirmed, withdrawn), blips, resumption, turn end, pre-roll, cut
turns. The half-duplex session around the detector is tested in test_half_duplex_session.py."""

from __future__ import annotations

import numpy as np
import pytest

from speechlm_demo.audio import chunks, rms_dbfs
from speechlm_demo.turntaking.detector import (
    BlipIgnored,
    PauseDetected,
    PauseLikely,
    PauseUnlikely,
    SpeechResumed,
    SpeechStarted,
    TurnClosed,
    TurnDetector,
    TurnSettings,
)
from speechlm_demo.turntaking.voice_activity import EnergyVAD
from tests.engines_for_tests import silence, tone

RATE = 16_000


def detect(audio: np.ndarray, **settings: float) -> list:
    detector = TurnDetector(EnergyVAD(RATE, 512), TurnSettings(**settings))
    return list(detector.push(audio))


def test_one_utterance_gives_one_turn_with_true_end() -> None:
    decisions = detect(np.concatenate([silence(0.5), tone(1.0), silence(1.0)]))
    assert [type(d) for d in decisions] == [SpeechStarted, PauseDetected, TurnClosed]
    start, pause, ended = decisions
    assert abs(start.start / RATE - 0.5) < 0.06
    assert (pause.decided - pause.end) / RATE == pytest.approx(0.16, abs=0.04)
    assert pause.end == ended.end
    assert abs(ended.end / RATE - 1.5) < 0.04  # true end of speech, not the decision time
    assert (ended.decided - ended.end) / RATE == pytest.approx(0.4, abs=0.04)
    assert len(ended.audio) / RATE == pytest.approx(1.0 + 0.3 + 0.1, abs=0.06)  # pre-roll + tail


def test_short_inner_pause_does_not_split_the_turn() -> None:
    decisions = detect(np.concatenate([tone(0.6), silence(0.2), tone(0.6), silence(1.0)]))
    assert [type(d) for d in decisions] == [SpeechStarted, PauseDetected, SpeechResumed, PauseDetected, TurnClosed]
    assert decisions[-1].end / RATE == pytest.approx(1.4, abs=0.04)


def test_a_blip_inside_a_pause_is_not_a_resumption() -> None:
    blip = tone(0.032)
    decisions = detect(np.concatenate([tone(0.6), silence(0.25), blip, silence(0.8)]))
    assert [type(d) for d in decisions] == [SpeechStarted, PauseDetected, BlipIgnored, TurnClosed]


def test_the_quiet_counts_from_the_end_of_the_voice_or_of_a_later_blip_in_the_pause() -> None:
    detector = TurnDetector(EnergyVAD(RATE, 512), TurnSettings(end_silence_ms=1000))
    (_, pause) = detector.push(np.concatenate([windows(16, silence), windows(20), windows(8, silence)]))
    assert isinstance(pause, PauseDetected) and pause.end == 36 * 512
    assert detector.quiet_ms(pause.end) == 8 * 32.0
    blip = list(detector.push(np.concatenate([windows(2), windows(4, silence)])))  # 64 ms of voice: not a resumption
    assert [type(d) for d in blip] == [BlipIgnored]
    assert detector.quiet_ms(pause.end) == 4 * 32.0  # from the end of the blip
    assert detector.quiet_ms(detector.samples_seen) == 0.0  # a later end of voice wins


def test_words_with_short_gaps_after_a_pause_are_a_resumption() -> None:
    window_s = 512 / RATE
    words = [part for _ in range(10) for part in (tone(2 * window_s), silence(window_s))]
    decisions = detect(np.concatenate([tone(18 * window_s), silence(2 * window_s), *words, silence(1.0)]), pause_ms=32)
    assert [type(d) for d in decisions[:3]] == [SpeechStarted, PauseDetected, SpeechResumed]
    assert [type(d) for d in decisions[-2:]] == [PauseDetected, TurnClosed]
    assert sum(isinstance(d, TurnClosed) for d in decisions) == 1
    assert decisions[-1].end == 49 * 512  # the last word's end, not the first pause's start


def test_silence_and_clicks_make_no_turn() -> None:
    clicks = silence(3.0)
    clicks[::8000] = 0.9
    assert detect(clicks) == []


def test_a_dc_offset_is_no_sound_and_speech_on_it_is_heard() -> None:
    quiet = np.random.default_rng(1).normal(0, 10 ** (-65 / 20), 10 * RATE).astype(np.float32)
    assert detect(quiet + np.float32(0.02)) == []  # a -34 dBFS bias: it made a 10 s "turn" out of a silent room
    spoken = np.concatenate([silence(0.5), tone(1.0), silence(1.5)]) + np.float32(0.02)
    closed = [d for d in detect(spoken, end_silence_ms=400) if isinstance(d, TurnClosed)]
    assert len(closed) == 1 and abs(closed[0].end / RATE - 1.5) < 0.1


def test_monologue_is_cut_at_max_turn_length() -> None:
    decisions = detect(tone(12.0), max_turn_s=5.0)
    ends = [d for d in decisions if isinstance(d, TurnClosed)]
    assert len(ends) == 2 and all(e.truncated for e in ends)
    assert all(len(e.audio) / RATE <= 5.5 for e in ends)


@pytest.mark.parametrize("gap_s", [0.15, 2.0])  # the next turn starts inside / well after the pre-roll
def test_turn_two_gets_its_pre_roll_and_nothing_of_turn_one(gap_s: float) -> None:
    rng = np.random.default_rng(0)
    stream = np.concatenate([silence(0.5), tone(1.0), silence(0.4 + gap_s), tone(0.8, freq=330.0), silence(1.0)])
    stream += rng.normal(0.0, 1e-4, len(stream)).astype(np.float32)  # faint noise: every sample is told apart
    detector = TurnDetector(EnergyVAD(RATE, 512), TurnSettings(pre_roll_ms=300))
    decisions, handed = [], []
    for piece in chunks(stream, 320):
        for decision in detector.push(piece):
            decisions.append(decision)
            handed += [decision.audio.copy()] if isinstance(decision, TurnClosed) else []
    first, second = [d for d in decisions if isinstance(d, TurnClosed)]
    start = [d for d in decisions if isinstance(d, SpeechStarted)][1].start
    since = max(first.decided, start - int(0.3 * RATE))  # its pre-roll, cut where the first turn was closed
    assert np.array_equal(second.audio, stream[since : second.end + int(0.1 * RATE)])
    assert np.array_equal(first.audio, handed[0]) and np.array_equal(second.audio, handed[1])  # unchanged since
    assert (since == start - int(0.3 * RATE)) == (gap_s > 0.3)  # the whole pre-roll after an idle trim


def test_a_turns_audio_is_handed_over_without_joining_its_windows_again() -> None:
    decisions = detect(np.concatenate([silence(0.5), tone(0.6), silence(0.2), tone(0.6), silence(1.0)]))
    pause, *_, ended = [d for d in decisions if isinstance(d, PauseDetected | TurnClosed)]
    assert isinstance(ended, TurnClosed) and np.shares_memory(pause.audio, ended.audio)
    assert not ended.audio.flags.writeable  # a view: nobody may change the turn under the detector


def windows(count: float, make=tone, size: int = 512) -> np.ndarray:
    """Exactly ``count`` VAD windows of ``size`` samples of ``make``'s signal."""
    samples = round(count * size)
    return make(samples / RATE + 1e-6)[:samples]


EARLY = {"early_pause_db": 30.0, "pause_ms": 32.0}


def test_a_likely_pause_comes_before_the_vad_confirms_it() -> None:
    # speech ends in the middle of window 47: its level is still voiced, its last 16 ms are silent
    audio = np.concatenate([windows(16, silence), windows(31.5), windows(40, silence)])
    decisions = detect(audio, **EARLY)
    assert [type(d) for d in decisions] == [SpeechStarted, PauseLikely, PauseDetected, TurnClosed]
    likely, confirmed = decisions[1], decisions[2]
    assert likely.end == round(47.5 * 512) and likely.decided == 48 * 512  # 16 ms after the true end
    assert confirmed.decided == likely.decided + 512  # the VAD's own pause, one window later
    assert len(likely.audio) == round(0.3 * RATE) + len(windows(32))  # pre-roll + the turn so far, quiet tail too
    assert [type(d) for d in detect(audio, pause_ms=32.0)] == [SpeechStarted, PauseDetected, TurnClosed]  # off


def test_a_dip_inside_a_word_is_withdrawn_when_the_level_comes_back() -> None:
    dip = np.concatenate([windows(20.5), windows(0.5, silence), windows(20)])  # a 16 ms stop-consonant closure
    decisions = detect(np.concatenate([windows(16, silence), dip, windows(40, silence)]), **EARLY)
    kinds = [type(d) for d in decisions]
    assert kinds == [SpeechStarted, PauseLikely, PauseUnlikely, PauseDetected, TurnClosed]
    assert decisions[2].at == decisions[1].decided + 512


class LaggingLevelVAD:
    """Voiced while the level is above -45 dBFS and for one window after, like Silero's lag."""

    sample_rate = RATE
    window = 512

    def __init__(self) -> None:
        self._was_loud = False

    def speech_probability(self, window: np.ndarray) -> float:
        loud = rms_dbfs(window) > -45.0
        voiced = loud or self._was_loud
        self._was_loud = loud
        return float(voiced)

    def reset(self) -> None:
        self._was_loud = False


@pytest.mark.parametrize("after, withdrawn", [(-50.0, False), (-38.0, True)])
def test_room_noise_keeps_a_likely_pause_and_a_soft_sound_withdraws_it(after: float, withdrawn: bool) -> None:
    rng = np.random.default_rng(0)

    def noise(seconds: float, dbfs: float = -50.0) -> np.ndarray:
        return rng.normal(0.0, 10 ** (dbfs / 20), int(seconds * RATE)).astype(np.float32)

    # speech ends mid-window into room noise (-50 dBFS, 36 dB under the speech); the next window is noise
    # again, or a soft last consonant (-38 dBFS) the VAD still calls voiced
    speech = windows(31.5) + noise(31.5 * 512 / RATE + 1e-6)[: round(31.5 * 512)]
    audio = np.concatenate([noise(16 * 512 / RATE), speech, windows(0.5, noise), noise(512 / RATE, after), noise(1.0)])
    detector = TurnDetector(LaggingLevelVAD(), TurnSettings(pause_ms=32.0, early_pause_db=30.0))
    kinds = [type(d) for d in detector.push(audio)]
    assert kinds[:2] == [SpeechStarted, PauseLikely]
    assert (PauseUnlikely in kinds) == withdrawn
    assert PauseDetected in kinds
