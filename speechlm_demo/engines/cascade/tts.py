"""Speech synthesis stage: the :class:`TTS` protocol, Piper (neural, offline voice) and espeak-ng (no weights)."""

from __future__ import annotations

import logging
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Protocol, runtime_checkable

import numpy as np
from pydantic import Field

from ...audio import AudioError, decode_audio, resample
from ..base import EngineError
from .stage_args import stage_kind
from .weights import piper_joe_voice

log = logging.getLogger(__name__)

OFFLINE = "offline"
ESPEAK_DEFAULT_VOICE = "en-us"
ESPEAK_SLOWEST_WPM = 80  # espeak-ng's espeakRATE_MINIMUM (speak_lib.h): a slower -s speaks at 80 all the same


@runtime_checkable
class TTS(Protocol):
    """Text to speech, chunk by chunk."""

    sample_rate: int

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[np.ndarray]:
        """Mono float32 chunks at :attr:`sample_rate` for ``text`` (nothing for blank text).

        Once ``cancel`` is set the rest no longer matters: the stage may stop early, yielding nothing more.
        """
        ...


@stage_kind("tts", "piper")
class PiperTTS:
    """A Piper voice (``.onnx`` + ``.onnx.json``); ``voice="offline"`` is ``en_US-joe-medium`` from PyPI.

    Piper yields one chunk per sentence at the voice's rate (22050 Hz for medium voices). ``length_scale``
    stretches each phoneme (< 1 faster, > 1 slower; None: the voice's own).
    """

    def __init__(
        self,
        voice: str = OFFLINE,
        *,
        config_path: str | None = None,
        length_scale: Annotated[float, Field(gt=0)] | None = None,
    ) -> None:
        import json

        import onnxruntime as ort
        from piper import PiperVoice, SynthesisConfig
        from piper.config import PiperConfig

        if voice == OFFLINE:
            model, config = piper_joe_voice()
        else:
            model = Path(voice)
            config = Path(config_path) if config_path else Path(f"{voice}.json")
            missing = [str(path) for path in (model, config) if not path.is_file()]
            if missing:
                raise EngineError(f"Piper voice file(s) not found: {', '.join(missing)}")
        options = ort.SessionOptions()
        # Idle worker threads must not spin: on a small CPU they would starve the LLM between sentences.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._voice = PiperVoice(
                config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))),
                session=ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"]),
            )
        except Exception as exc:  # noqa: BLE001 - onnxruntime / JSON errors
            raise EngineError(f"could not load Piper voice {model}: {exc}") from exc
        self._config = SynthesisConfig(length_scale=length_scale)
        self.sample_rate: int = self._voice.config.sample_rate
        self.voice_name = model.stem
        # Piper's phonemizer (bundled espeak-ng) keeps global state: one synthesis at a time.
        self._lock = threading.Lock()
        log.info("Piper voice %s loaded (%d Hz)", model.name, self.sample_rate)

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[np.ndarray]:
        """One chunk per sentence of ``text``; no sentence is synthesised once ``cancel`` is set."""
        if not text.strip() or (cancel is not None and cancel.is_set()):
            return
        with self._lock:
            chunks = self._voice.synthesize(text, syn_config=self._config)
            for chunk in chunks:  # one per sentence: the first is out before the next is synthesised
                audio = chunk.audio_float_array.astype(np.float32, copy=False)
                yield resample(audio, chunk.sample_rate, self.sample_rate)
                if cancel is not None and cancel.is_set():
                    return  # before asking Piper for the next sentence


@stage_kind("tts", "espeak")
class EspeakTTS:
    """The espeak-ng command-line synthesiser: robotic but needs no weights (``apt install espeak-ng``).

    ``speed_wpm`` is its ``-s``, words per minute, at least 80 (it speaks slower values at 80).
    """

    sample_rate = 22_050

    def __init__(
        self,
        voice: str = ESPEAK_DEFAULT_VOICE,
        *,
        speed_wpm: Annotated[int, Field(ge=ESPEAK_SLOWEST_WPM)] = 165,
        executable: str | None = None,
    ) -> None:
        found = executable or shutil.which("espeak-ng") or shutil.which("espeak")
        if not found:
            raise EngineError("espeak-ng is not installed (Debian/Ubuntu: apt install espeak-ng)")
        self.executable = found
        self.voice = ESPEAK_DEFAULT_VOICE if voice == OFFLINE else voice
        self.speed_wpm = speed_wpm

    def synthesize(self, text: str, cancel: threading.Event | None = None) -> Iterator[np.ndarray]:
        """The whole text as one chunk (espeak-ng takes milliseconds: ``cancel`` is not waited on)."""
        if not text.strip():
            return
        command = [self.executable, "--stdout", "-v", self.voice, "-s", str(self.speed_wpm)]
        try:
            result = subprocess.run(command, input=text.encode("utf-8"), capture_output=True, timeout=30, check=True)
        except subprocess.CalledProcessError as exc:
            detail = exc.stderr.decode("utf-8", "replace").strip()[:200]
            raise EngineError(f"espeak-ng failed (exit {exc.returncode}): {detail}") from None
        except subprocess.TimeoutExpired:
            raise EngineError("espeak-ng took longer than 30 s") from None
        yield decoded_audio(result.stdout, self.sample_rate, "espeak-ng")


def decoded_audio(data: bytes, sample_rate: int, source: str) -> np.ndarray:
    """An audio file's samples (WAV, ...) resampled to ``sample_rate``; unusable bytes raise :class:`EngineError`."""
    try:
        audio, rate = decode_audio(data)
    except AudioError as exc:
        raise EngineError(f"{source} produced no usable audio: {exc}") from None
    return resample(audio, rate, sample_rate)

