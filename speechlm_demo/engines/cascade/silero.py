"""Silero VAD (v5) on onnxruntime + numpy: the wheel's ``silero_vad.onnx`` without torch.

The model takes 512 new samples at 16 kHz prefixed by the previous window's last 64 samples, plus an
LSTM state ``(2, 1, 128)``; it returns the speech probability and the next state. This mirrors
``silero_vad.utils_vad.OnnxWrapper`` (the tests check both give the same probabilities).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from ...audio import AudioError
from ..base import EngineError
from .weights import silero_vad_onnx

EXPECTED_INPUTS = {"input", "state", "sr"}


class SileroVAD:
    """Silero speech probability per 32 ms window; satisfies :class:`speechlm_demo.turntaking.voice_activity.VoiceActivityModel`."""

    sample_rate = 16_000
    window = 512
    context = 64

    def __init__(self, model_path: str | Path | None = None) -> None:
        path = Path(model_path) if model_path else silero_vad_onnx()
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
        names = {item.name for item in self._session.get_inputs()}
        if names != EXPECTED_INPUTS:
            raise EngineError(f"{path} is not a Silero VAD v5 model (inputs {sorted(names)})")
        self._rate = np.array(self.sample_rate, dtype=np.int64)
        self.reset()

    def reset(self) -> None:
        """Clear the recurrent state and the context between streams."""
        self._state = np.zeros((2, 1, 128), dtype=np.float32)
        self._context = np.zeros((1, self.context), dtype=np.float32)

    def speech_probability(self, window: np.ndarray) -> float:
        """Probability that ``window`` (512 float32 samples at 16 kHz) holds speech."""
        samples = np.asarray(window, dtype=np.float32).reshape(1, -1)
        if samples.shape[1] != self.window:
            raise AudioError(f"Silero VAD takes windows of {self.window} samples, got {samples.shape[1]}")
        framed = np.concatenate([self._context, samples], axis=1)
        probability, self._state = self._session.run(None, {"input": framed, "state": self._state, "sr": self._rate})
        self._context = framed[:, -self.context :]
        return float(probability[0, 0])
