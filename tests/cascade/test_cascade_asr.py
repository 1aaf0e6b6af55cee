"""faster-whisper on the offline Whisper base weights."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.cascade.asr import ASR, FasterWhisperASR, build_asr, without_loop
from tests.cascade.conftest import need

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def whisper() -> FasterWhisperASR:
    need("faster_whisper")
    return FasterWhisperASR()


def test_transcribes_a_spoken_question(whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray]) -> None:
    assert isinstance(whisper, ASR)
    text = whisper.transcribe(spoken("What is the capital of France?")).lower()
    assert "capital" in text
    assert "france" in text


def test_clear_words_are_heard_with_more_confidence_than_mumbling(
    whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray]
) -> None:
    clear = whisper.hear(spoken("What is the boiling point of water?"))
    assert "boiling" in clear.text.lower() and clear.confidence is not None and clear.confidence > 0.6
    # the same words played backwards: Whisper still writes something, and is unsure of it
    garbled = whisper.hear(spoken("What is the boiling point of water?")[::-1].copy())
    assert garbled.confidence is None or garbled.confidence < clear.confidence - 0.2
    assert whisper.hear(np.zeros(16_000, dtype=np.float32)).confidence is None  # nothing heard, nothing to be sure of


def test_silence_and_empty_audio_give_no_words(whisper: FasterWhisperASR) -> None:
    assert whisper.transcribe(np.zeros(0, dtype=np.float32)) == ""
    assert whisper.transcribe(np.zeros(16_000, dtype=np.float32)) == ""


def test_bad_settings_are_reported() -> None:
    need("faster_whisper")
    with pytest.raises(EngineError, match=r"asr\.beam: not an argument of asr kind faster-whisper \(known: .*beam_size"):
        build_asr({"kind": "faster-whisper", "beam": 3})
    with pytest.raises(EngineError, match="unknown ASR kind"):
        build_asr({"kind": "vosk"})
    with pytest.raises(EngineError, match="could not load Whisper directory"):
        FasterWhisperASR("/")


class _GenerateSpy:
    """Wraps the CTranslate2 model and counts decoder runs."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.generated = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        self.generated += 1
        return self._model.generate(*args, **kwargs)


def test_a_cancelled_turn_skips_the_decoder(
    whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _GenerateSpy(whisper._model.model)
    monkeypatch.setattr(whisper._model, "model", spy)
    audio = spoken("What is the capital of France?")
    cancel = threading.Event()
    assert "france" in whisper.transcribe(audio, cancel).lower()
    cancel.set()
    assert whisper.transcribe(audio, cancel) == ""
    assert spy.generated == 1


def test_a_shorter_encoder_window_hears_the_same_words(
    whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray]
) -> None:
    wide = FasterWhisperASR(min_window_s=10.0)
    assert whisper.min_window_frames == 600 and wide.min_window_frames == 1000
    for text in (
        "What is the capital of France?",
        "Why is the sky blue?",
        "What should I pack for a weekend trip to the mountains in October?",
    ):
        audio = spoken(text)
        assert whisper.transcribe(audio) == wide.transcribe(audio)


def test_a_turn_longer_than_the_window_is_heard_to_the_end(
    whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray]
) -> None:
    text = "I would like to know how photosynthesis works in simple terms, and why leaves are green, please."
    audio = spoken(text)
    assert len(audio) > 5 * whisper.sample_rate
    heard = whisper.transcribe(audio).lower()
    assert "photosynthesis" in heard and "green" in heard


@pytest.mark.parametrize(
    ("decoded", "heard"),
    [
        ("Who painted the Mona Lisa? Who painted the Mona Lisa? Who painted the Mo", "Who painted the Mona Lisa?"),
        (" Yes, please. Yes, please.", "Yes, please."),
        ("Tell me a joke about cats. Tell me a joke about", "Tell me a joke about cats."),
        ("Hello. How are you? Hello. How are you? Hel", "Hello. How are you?"),
        ("Well. Which planet is the largest?", "Well. Which planet is the largest?"),
        ("Hi. Hi there.", "Hi. Hi there."),
        ("What is it? What", "What is it? What"),
        ("It costs 3.5 euros. 3.5 euros.", "It costs 3.5 euros. 3.5 euros."),
        ("", ""),
    ],
)
def test_whispers_loop_is_cut_where_it_starts_over(decoded: str, heard: str) -> None:
    assert without_loop(decoded) == heard


def test_a_turn_longer_than_whispers_window_is_heard_in_pieces(
    whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray]
) -> None:
    sentences = [
        "The first train leaves the station at seven in the morning.",
        "Please remember to bring an umbrella because it may rain later today.",
        "My grandmother grows tomatoes and beans in her small garden.",
        "The museum opens again next week after a long renovation.",
        "We watched a documentary about penguins living in Antarctica.",
        "Our football team finally won the championship last Sunday.",
        "The library will close early on Friday for a staff meeting.",
        "Finally, do not forget to water the orange tree on the balcony.",
    ]
    gap = np.zeros(8_000, np.float32)
    audio = np.concatenate([part for sentence in sentences for part in (spoken(sentence), gap)])
    assert 27 * whisper.sample_rate < len(audio) < 40 * whisper.sample_rate
    heard = whisper.transcribe(audio).lower()
    assert "first train" in heard and "orange tree" in heard and "penguins" in heard


class _EncodeSpy(_GenerateSpy):
    """Counts encoder runs too, and sets ``cancel`` after the first one (the turn dropped mid-way)."""

    def __init__(self, model: Any, cancel: threading.Event) -> None:
        super().__init__(model)
        self.cancel = cancel
        self.encoded = 0

    def encode(self, *args: Any, **kwargs: Any) -> Any:
        self.encoded += 1
        self.cancel.set()
        return self._model.encode(*args, **kwargs)


def test_a_turn_cancelled_during_its_first_piece_encodes_no_further_piece(
    whisper: FasterWhisperASR, spoken: Callable[..., np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: a dropped speculative reply on a long monologue kept encoding every 27 s piece."""
    cancel = threading.Event()
    spy = _EncodeSpy(whisper._model.model, cancel)
    monkeypatch.setattr(whisper._model, "model", spy)
    sentence = spoken("The first train leaves the station at seven in the morning.")
    audio = np.concatenate([sentence, np.zeros(8_000, np.float32)] * 16)
    assert len(audio) > 2 * 27 * whisper.sample_rate  # three pieces
    assert whisper.transcribe(audio, cancel) == ""
    assert spy.encoded == 1 and spy.generated == 0
