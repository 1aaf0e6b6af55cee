"""Smart Turn v3: Pipecat's learned end-of-turn model, run through onnxruntime without Pipecat.

The model (Whisper-tiny encoder + a small classifier, int8 ONNX, BSD-2) hears the last 8 s of the turn
and says how likely it is that the speaker has finished: intonation and rhythm, not words. It ships in
the ``pipecat-ai`` wheel (``pipecat/audio/turn/smart_turn/data/smart-turn-v3*.onnx``), which is located,
never imported (install it with ``pip install --no-deps pipecat-ai``: its dependencies are not needed).

Input, as Pipecat 1.14.0 prepares it (``local_smart_turn_v3.py`` and ``_whisper_features.py``): 16 kHz
mono, the last 8 s of the turn (shorter turns zero-padded at the START), the waveform normalised to zero
mean and unit variance over the whole padded 8 s, then Whisper's log-mel spectrogram (80 mels, 400-point
periodic Hann window, hop 160, reflect-padded STFT, the last frame dropped, log10 clamped at max - 8,
scaled by (x + 4) / 4): ``input_features`` of shape (1, 80, 800). The output is the probability (after
a sigmoid) that the turn is complete.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from pathlib import Path

import numpy as np
import onnxruntime as ort
from faster_whisper.feature_extractor import FeatureExtractor

from ..audio import AudioError, resample
from ..engines.base import EngineError
from ..load_once import once_per_process

log = logging.getLogger(__name__)

RATE = 16_000
WINDOW_S = 8
N_MELS = 80
FRAMES = 800
NORM_EPS = 1e-7  # as transformers' zero-mean unit-variance normalisation (Pipecat's _NORM_VARIANCE_EPS)
PIP_NAME = "pipecat-ai"
PIP_PIN = "pipecat-ai==1.14.0"
DATA_DIR = "audio/turn/smart_turn/data"
INPUT_NAME = "input_features"

# faster-whisper's numpy extractor with Whisper's parameters over an 8 s window (80 mels, n_fft 400, hop 160).
_EXTRACTOR = FeatureExtractor(feature_size=N_MELS, sampling_rate=RATE, hop_length=160, chunk_length=WINDOW_S, n_fft=400)


class SmartTurnError(EngineError):
    """The Smart Turn model is missing or is not the model this code expects (the message says what to do)."""


def locate_model() -> Path:
    """The newest ``smart-turn-v3*.onnx`` in the installed ``pipecat-ai`` wheel (found, not imported)."""
    spec = importlib.util.find_spec("pipecat")
    if spec is None or not spec.submodule_search_locations:
        raise SmartTurnError(f"the Smart Turn model is missing: install it with pip install --no-deps {PIP_PIN}")
    data = Path(next(iter(spec.submodule_search_locations))) / DATA_DIR
    found = sorted(data.glob("smart-turn-v3*.onnx"))
    if not found:
        raise SmartTurnError(f"no smart-turn-v3*.onnx in {data}; reinstall: pip install --no-deps --force-reinstall {PIP_PIN}")
    return found[-1]


def last_window(audio: np.ndarray, rate: int = RATE) -> np.ndarray:
    """The last 8 s of ``audio`` at 16 kHz, zero-padded at the start when shorter (float32, 128 000 samples)."""
    samples = np.asarray(audio, dtype=np.float32).reshape(-1)
    if samples.size and not np.all(np.isfinite(samples)):
        raise AudioError("audio for Smart Turn contains NaN or infinity")
    if rate != RATE and samples.size:
        samples = resample(samples, rate, RATE)
    size = WINDOW_S * RATE
    if samples.size >= size:
        return samples[-size:]
    return np.concatenate([np.zeros(size - samples.size, np.float32), samples])


def features(window: np.ndarray) -> np.ndarray:
    """Whisper log-mel features of one 8 s window, shape (80, 800), float32: the model's ``input_features``."""
    if window.shape != (WINDOW_S * RATE,):
        raise AudioError(f"Smart Turn features take exactly {WINDOW_S * RATE} samples, got {window.shape}")
    normalised = (window - window.mean()) / np.sqrt(window.var() + NORM_EPS)
    mel = _EXTRACTOR(normalised.astype(np.float32), padding=0)
    return np.asarray(mel, dtype=np.float32)


class SmartTurn:
    """Probability that a turn's audio is a finished turn. Thread-safe; one instance can serve many sessions."""

    def __init__(self, model_path: str | Path | None = None, *, threshold: float = 0.5, threads: int = 1) -> None:
        path = Path(model_path) if model_path else locate_model()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        try:
            self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own types for damaged files
            raise SmartTurnError(f"{path} could not be loaded as an ONNX model: {exc}") from exc
        inputs = self._session.get_inputs()
        if [i.name for i in inputs] != [INPUT_NAME]:
            raise SmartTurnError(f"{path} is not a Smart Turn v3 model (inputs {[i.name for i in inputs]})")
        self.path = path
        self.threshold = threshold
        self._lock = threading.Lock()

    def probability(self, audio: np.ndarray, rate: int = RATE) -> float:
        """Probability in [0, 1] that the speaker has finished at the end of ``audio`` (mono, any rate)."""
        batch = features(last_window(audio, rate))[np.newaxis]
        with self._lock:
            output = self._session.run(None, {INPUT_NAME: batch})[0]
        return float(np.asarray(output).reshape(-1)[0])

    def is_complete(self, audio: np.ndarray, rate: int = RATE) -> bool:
        """Whether the turn sounds finished (probability above :attr:`threshold`)."""
        return self.probability(audio, rate) > self.threshold


_models = once_per_process(SmartTurn)  # by model file


def shared_model(model_path: str | Path | None = None) -> SmartTurn:
    """One loaded model per file for the whole process (sessions share it: ~8 MB, ~10-60 ms a call)."""
    return _models(Path(model_path) if model_path else locate_model())
