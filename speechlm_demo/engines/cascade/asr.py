"""Speech recognition stage: the :class:`ASR` protocol and faster-whisper (CTranslate2 Whisper)."""

from __future__ import annotations

import logging
import math
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from ..base import EngineError
from .stage_args import build_stage, stage_kind, stage_kinds
from .weights import whisper_base_dir
from .whisper_vocab import TokenMap, english_model_dir

log = logging.getLogger(__name__)


OFFLINE = "offline"
SHORT_TURN_S = 27.0
FRAMES_PER_S = 100  # Whisper's feature frames
MAX_FRAMES = 3000  # its 30 s window
SAMPLES_PER_FRAME = 160
TAIL_FRAMES = 200
MAX_TOKENS = 224
NO_SPEECH_PROB = 0.6
SENTENCE_END = re.compile(r"[.?!](?=\s|$)")


@dataclass(frozen=True)
class Heard:
    """What the recogniser heard: ``text`` (``""``: nothing) and how sure it is of it, in [0, 1]
    (``None`` when it cannot tell)."""

    text: str
    confidence: float | None = None


@runtime_checkable
class ASR(Protocol):
    """Whole-utterance speech to text."""

    sample_rate: int

    def hear(self, audio: np.ndarray, cancel: threading.Event | None = None) -> Heard:
        """Text of ``audio`` (mono float32 at :attr:`sample_rate`) and the recogniser's confidence.

        Once ``cancel`` is set the result no longer matters: the stage may stop early and hear nothing.
        """
        ...

    def transcribe(self, audio: np.ndarray, cancel: threading.Event | None = None) -> str:
        """Only the text of :meth:`hear`: ``""`` when nothing was said."""
        ...


def split_device(device: str) -> tuple[str, int]:
    """``"cuda:1"`` -> ``("cuda", 1)``; ``"cpu"`` -> ``("cpu", 0)``."""
    kind, _, index = device.partition(":")
    return kind, int(index or 0)


@stage_kind("asr", "faster-whisper")
class FasterWhisperASR:
    """Whisper through faster-whisper: greedy decoding, no timestamps, no internal VAD (turns are cut already).

    ``model`` is ``"offline"`` (Whisper base assembled from PyPI packages), a hub id such as
    ``"base.en"`` / ``"large-v3-turbo"`` (downloaded by faster-whisper) or a local CTranslate2 directory.
    ``language=None`` lets Whisper detect the language (about 0.3 s slower per turn).
    ``min_window_s`` is the shortest encoder window (see :meth:`_short`; at most Whisper's 30 s). ``num_workers``
    turns may be transcribed at once (each on ``cpu_threads``; 0: CTranslate2's default,
    ``OMP_NUM_THREADS`` or 4): a speculative turn still running then delays no other. ``beam_size`` 1 is greedy.
    ``vocabulary="english"`` decodes with a copy of the model that only knows the tokens English needs
    (faster, see :mod:`.whisper_vocab`); it needs ``language="en"``.
    """

    sample_rate = 16_000

    def __init__(
        self,
        model: str = OFFLINE,
        *,
        language: str | None = "en",
        device: str = "cpu",
        compute_type: str = "int8",
        beam_size: Annotated[int, Field(ge=1)] = 1,
        cpu_threads: Annotated[int, Field(ge=0)] = 0,
        num_workers: Annotated[int, Field(ge=1)] = 1,
        min_window_s: Annotated[float, Field(ge=0, le=MAX_FRAMES / FRAMES_PER_S)] = 6.0,
        vocabulary: Literal["full", "english"] = "full",
    ) -> None:
        from faster_whisper import WhisperModel

        source = str(whisper_base_dir()) if model == OFFLINE else model
        if vocabulary == "english":
            source = str(english_model_dir(_model_dir(source)))
        kind, index = split_device(device)
        try:
            self._model = WhisperModel(
                source,
                device=kind,
                device_index=index,
                compute_type=compute_type,
                cpu_threads=cpu_threads,
                num_workers=num_workers,
            )
        except Exception as exc:  # noqa: BLE001 - CTranslate2 and the hub raise many types
            where = "directory" if Path(source).is_dir() else "model"
            raise EngineError(f"could not load Whisper {where} {source!r}: {exc}") from exc
        self.model_name = source
        self.language = language or None
        from faster_whisper.tokenizer import Tokenizer

        self._tokens = TokenMap.load(Path(source))
        multilingual = self._tokens.multilingual if self._tokens else self._model.model.is_multilingual
        self._tokenizer = Tokenizer(self._model.hf_tokenizer, multilingual, task="transcribe", language=self.language)
        self.beam_size = beam_size
        self.min_window_frames = min(MAX_FRAMES, round(min_window_s * FRAMES_PER_S))
        log.info("Whisper %s loaded on %s (%s)", source, device, compute_type)

    @staticmethod
    def check_arguments(arguments: Any) -> None:
        """The combination the annotations cannot say (see :mod:`.stage_args`): English vocabulary, English words."""
        if arguments.vocabulary == "english" and arguments.language != "en":
            raise ValueError(f"vocabulary 'english' needs language 'en', not {arguments.language!r}")

    def transcribe(self, audio: np.ndarray, cancel: threading.Event | None = None) -> str:
        """Only the text of :meth:`hear`."""
        return self.hear(audio, cancel).text

    def hear(self, audio: np.ndarray, cancel: threading.Event | None = None) -> Heard:
        """Transcribe one whole turn: in pieces of at most ``SHORT_TURN_S``, each through a shortened
        encoder window (see :meth:`_short`), or with faster-whisper's own loop when the language is unknown.

        The confidence is the exponent of the mean log-probability of the tokens decoded (over all
        pieces): ~0.8-0.9 for clearly heard words, under ~0.5 for words Whisper guessed.
        """
        if audio.size == 0:
            return Heard("")
        if self.language:
            audio = np.asarray(audio, dtype=np.float32)
            heard: list[tuple[str, float, int]] = []
            for piece in pieces(audio, self.sample_rate):
                if cancel is not None and cancel.is_set():
                    return Heard("")  # the result no longer matters: encode no further piece
                heard.append(self._short(piece, cancel))
            return _joined(heard)
        segments, _info = self._model.transcribe(
            np.asarray(audio, dtype=np.float32),
            language=self.language,
            beam_size=self.beam_size,
            without_timestamps=True,
            vad_filter=False,
            condition_on_previous_text=False,
        )
        return _joined([(s.text.strip(), s.avg_logprob, max(1, len(s.tokens))) for s in segments])

    def _short(self, audio: np.ndarray, cancel: threading.Event | None) -> tuple[str, float, int]:
        """Whisper on a window of max(``min_window_s``, turn + 2 s) instead of the fixed 30 s.

        The encoder's cost grows with its window: on 2 CPU cores Whisper base spends ~0.6 s encoding
        30 s of (mostly padding) features and ~0.05 s for 6 s, with the same text. The turn is padded
        with digital silence *before* the log-mel features are taken, as in Whisper's training (30 s of
        zero samples), not with zero features: on short windows zero features made Whisper stop after
        the first word or loop. Windows of 5 s and less still loop now and then (see :func:`without_loop`).
        A turn cancelled while it was being encoded skips the decoder (about half of the work).
        Returns the text, the mean log-probability of its tokens and their number.
        """
        import ctranslate2

        turn_frames = len(audio) // SAMPLES_PER_FRAME
        frames = min(MAX_FRAMES, max(self.min_window_frames, turn_frames + TAIL_FRAMES))
        padded = np.zeros(max(len(audio), frames * SAMPLES_PER_FRAME), dtype=np.float32)
        padded[: len(audio)] = audio
        window = np.ascontiguousarray(self._model.feature_extractor(padded)[:, :frames])
        encoded = self._model.model.encode(ctranslate2.StorageView.from_array(window[None]), to_cpu=False)
        if cancel is not None and cancel.is_set():
            return "", 0.0, 0
        prompt = self._tokenizer.sot_sequence + [self._tokenizer.no_timestamps]
        if self._tokens is not None:
            prompt = self._tokens.to_model(prompt)
        result = self._model.model.generate(
            encoded,
            [prompt],
            beam_size=self.beam_size,
            max_length=min(MAX_TOKENS, 16 + min(frames, turn_frames) // 8),
            suppress_blank=True,
            return_no_speech_prob=True,
            return_scores=True,
        )
        if result[0].no_speech_prob > NO_SPEECH_PROB:
            return "", 0.0, 0  # Whisper's own "nobody spoke" token won: drop what it would hallucinate
        ids = result[0].sequences_ids[0]
        text = without_loop(self._tokenizer.decode(self._tokens.from_model(ids) if self._tokens else ids))
        return text, float(result[0].scores[0]), len(ids)  # scores: the mean log-probability per token


def _joined(heard: list[tuple[str, float, int]]) -> Heard:
    """Pieces' (text, mean log-probability, tokens) as one :class:`Heard`."""
    spoken = [(text, logprob, tokens) for text, logprob, tokens in heard if text]
    if not spoken:
        return Heard("")
    tokens = sum(n for _, _, n in spoken)
    mean = sum(logprob * n for _, logprob, n in spoken) / tokens
    return Heard(" ".join(text for text, _, _ in spoken).strip(), round(math.exp(mean), 3))


def _model_dir(source: str) -> Path:
    """The local directory of a CTranslate2 model given as a directory or a hub id (downloaded if needed)."""
    if Path(source).is_dir():
        return Path(source)
    from faster_whisper.utils import download_model

    try:
        return Path(download_model(source))
    except Exception as exc:  # the hub client raises many types
        raise EngineError(f"could not get Whisper model {source!r}: {exc}") from exc


def pieces(audio: np.ndarray, rate: int) -> list[np.ndarray]:
    """``audio`` cut into pieces of at most ``SHORT_TURN_S``, each cut in the quietest 0.1 s of its last 7 s."""
    longest, step, steps = int(SHORT_TURN_S * rate), rate // 10, 70
    out = []
    while len(audio) > longest:
        first = longest - steps * step
        energy = np.square(audio[first:longest]).reshape(steps, step).sum(axis=1)
        cut = first + int(np.argmin(energy)) * step + step // 2
        out.append(audio[:cut])
        audio = audio[cut:]
    return [*out, audio]


def without_loop(text: str) -> str:
    """Text up to where Whisper starts over: ``"Hi there. Hi there. Hi th"`` -> ``"Hi there."``.

    On a short window Whisper sometimes repeats the whole utterance until its token budget runs out.
    A text made of one unit (one or more whole sentences) followed by its repeats, the last perhaps cut
    short, is that loop when at least one repeat is whole or the cut one has two words or more; any
    other text comes back unchanged (stripped).
    """
    text = text.strip()
    for end in SENTENCE_END.finditer(text):
        unit = text[: end.end()]
        rest = text[end.end() :].lstrip()
        repeats = 0
        while rest.startswith(unit):
            rest = rest[len(unit) :].lstrip()
            repeats += 1
        if unit.startswith(rest) and (repeats or len(rest.split()) >= 2):
            return unit
    return text


ASR_KINDS: dict[str, type] = stage_kinds(FasterWhisperASR)  # the first is the default


def build_asr(config: Mapping[str, Any], device: str = "cpu") -> ASR:
    """An ASR stage from the catalogue's ``asr`` mapping (``kind: faster-whisper``)."""
    return build_stage("asr", ASR_KINDS, config, device=device)
