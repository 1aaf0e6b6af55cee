"""DNSMOS P.835 (SIG, BAK, OVRL) and P.808 MOS with the ONNX models that the ``speechmos`` wheel ships.

The wheel (installed ``--no-deps``) is used only for its model files: the features are computed here with
librosa and the models run on the project's onnxruntime. The procedure follows the DNS Challenge's
reference (``speechmos.dnsmos`` 0.0.1.1, ``dnsmos_local.py``): 16 kHz audio, a clip shorter than 9.01 s is
doubled until it is that long, 9.01 s windows hop by 1 s, the P.835 model reads the raw samples and the
P.808 model a 120-band log-mel spectrogram; the P.835 outputs go through the published polynomial fits and
every score is the mean over the windows. ``tests/test_judges_dnsmos.py`` checks that the scores equal the
package's own ``speechmos.dnsmos.run``.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..audio import resample

log = logging.getLogger(__name__)

RATE = 16_000
WINDOW_S = 9.01
HOP_S = 1.0
MEL_BANDS = 120
MEL_FRAME = 320
MEL_HOP = 160
# Polynomial fits of the raw P.835 outputs to MOS (non-personalised models), highest power first.
SIG_FIT = (-0.08397278, 1.22083953, 0.0052439)
BAK_FIT = (-0.13166888, 1.60915514, -0.39604546)
OVRL_FIT = (-0.06766283, 1.11546468, 0.04602535)


class DnsmosUnavailable(RuntimeError):
    """The ``speechmos`` model files or onnxruntime cannot be loaded."""


@dataclass(frozen=True)
class DnsmosScores:
    """Mean opinion scores on the 1-5 scale."""

    sig: float
    bak: float
    ovrl: float
    p808: float

    def to_dict(self) -> dict[str, float]:
        """``{"dnsmos_sig": ..., "dnsmos_bak": ..., "dnsmos_ovrl": ..., "dnsmos_p808": ...}``."""
        return {f"dnsmos_{name}": round(float(getattr(self, name)), 4) for name in ("sig", "bak", "ovrl", "p808")}


def model_dir() -> Path:
    """The ``dnsmos_models`` folder inside the installed ``speechmos`` package."""
    try:
        folder = Path(str(resources.files("speechmos"))) / "dnsmos_models"
    except ModuleNotFoundError:
        raise DnsmosUnavailable("DNSMOS needs the speechmos wheel: pip install --no-deps speechmos==0.0.1.1") from None
    if not (folder / "sig_bak_ovr.onnx").is_file() or not (folder / "model_v8.onnx").is_file():
        raise DnsmosUnavailable(f"the speechmos package has no DNSMOS models in {folder}")
    return folder


def _windows(audio: np.ndarray) -> list[np.ndarray]:
    """The 9.01 s windows scored (the clip doubled first while shorter than one window)."""
    length = int(WINDOW_S * RATE)
    while len(audio) < length:
        audio = np.concatenate([audio, audio])
    count = int(np.floor(len(audio) / RATE) - WINDOW_S) + 1
    # The reference computes each window's end in floating point, (i + 9.01) * 16000, which falls one
    # sample short for some i; such a window is skipped there, so it is here (the scores stay equal).
    spans = ((int(i * HOP_S * RATE), int((i * HOP_S + WINDOW_S) * RATE)) for i in range(count))
    return [audio[start:end] for start, end in spans if len(audio[start:end]) >= length]


def log_mel(window: np.ndarray) -> np.ndarray:
    """The P.808 model's input: 120-band mel power in dB relative to the window's peak, scaled, (frames, 120)."""
    import librosa

    power = librosa.feature.melspectrogram(y=window, sr=RATE, n_fft=MEL_FRAME + 1, hop_length=MEL_HOP, n_mels=MEL_BANDS)
    return ((librosa.power_to_db(power, ref=np.max) + 40.0) / 40.0).T


class Dnsmos:
    """Scores speech with DNSMOS; thread-safe (onnxruntime sessions may be run concurrently)."""

    def __init__(self, folder: Path | None = None, *, threads: int = 1) -> None:
        import onnxruntime as ort

        folder = folder or model_dir()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        try:
            self._p835 = ort.InferenceSession(str(folder / "sig_bak_ovr.onnx"), options, providers=["CPUExecutionProvider"])
            self._p808 = ort.InferenceSession(str(folder / "model_v8.onnx"), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise DnsmosUnavailable(f"cannot load the DNSMOS models in {folder}: {exc}") from exc
        self._lock = threading.Lock()

    def score(self, audio: np.ndarray, sample_rate: int) -> DnsmosScores:
        """DNSMOS of mono float32 ``audio`` (resampled to 16 kHz when needed); ValueError when it is empty."""
        audio = np.nan_to_num(np.asarray(audio, dtype=np.float32))
        if audio.ndim != 1 or audio.size == 0:
            raise ValueError("DNSMOS needs a non-empty mono signal")
        if sample_rate != RATE:
            audio = resample(audio, sample_rate, RATE)
        audio = np.clip(audio, -1.0, 1.0)
        raw, p808 = [], []
        for window in _windows(audio):
            samples = window.astype(np.float32)[None, :]
            raw.append(self._p835.run(None, {"input_1": samples})[0][0])
            mel = log_mel(window[:-MEL_HOP]).astype(np.float32)[None, :, :]
            p808.append(float(self._p808.run(None, {"input_1": mel})[0][0][0]))
        sig, bak, ovrl = np.asarray(raw, dtype=np.float64).T
        return DnsmosScores(
            sig=float(np.mean(np.polyval(SIG_FIT, sig))),
            bak=float(np.mean(np.polyval(BAK_FIT, bak))),
            ovrl=float(np.mean(np.polyval(OVRL_FIT, ovrl))),
            p808=float(np.mean(p808)),
        )
