"""PCM helpers: validate, convert to mono float32, resample, chunk, encode WAV.

Every audio buffer that crosses a module boundary inside the app is a 1-D ``float32`` numpy array in
[-1, 1] plus its sample rate. These helpers turn whatever arrives (int16 WebRTC frames, stereo files,
NaN-ridden buffers) into that form, or raise :class:`AudioError` with a message a user can read.
"""

from __future__ import annotations

import io
import logging
import os
import sys

import numpy as np
import soundfile as sf
import soxr

log = logging.getLogger(__name__)

MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 16


class AudioError(ValueError):
    """Audio that cannot be used, with a message meant for the user."""


def check_sample_rate(sample_rate: int) -> int:
    """Return ``sample_rate`` as an int, or raise if it is not a plausible audio rate."""
    try:
        rate = int(sample_rate)
    except (TypeError, ValueError):
        raise AudioError(f"sample rate {sample_rate!r} is not a number") from None
    if rate != sample_rate or not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(
            f"sample rate {sample_rate!r} Hz is outside {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz"
        )
    return rate


def to_mono_float32(samples: object) -> np.ndarray:
    """Convert any PCM array to mono float32 in [-1, 1].

    Accepts int8/16/32, uint8 and float arrays shaped ``(n,)``, ``(channels, n)`` or ``(n, channels)``
    (the smaller axis is taken as channels). Channels are averaged; NaN/inf become 0; floats are
    clipped. Raises :class:`AudioError` for anything else.
    """
    try:
        array = np.asarray(samples)
    except Exception as exc:  # noqa: BLE001 - arbitrary objects may fail in arbitrary ways
        raise AudioError(f"audio is not an array: {exc}") from None
    if array.dtype == object or array.dtype.kind not in "iuf":
        raise AudioError(f"audio has unsupported sample type {array.dtype}")
    if array.ndim == 0:
        raise AudioError("audio is a single number, not a signal")
    if array.ndim > 2:
        raise AudioError(f"audio has {array.ndim} dimensions; expected samples or (channels, samples)")
    if array.ndim == 2:
        channel_axis = 0 if array.shape[0] <= array.shape[1] else 1
        if array.shape[channel_axis] > MAX_CHANNELS:
            raise AudioError(f"audio has {array.shape[channel_axis]} channels; at most {MAX_CHANNELS}")
        array = _scale_to_float(array).mean(axis=channel_axis, dtype=np.float32)
    else:
        array = _scale_to_float(array)
    if not np.isfinite(array).all():
        bad = int((~np.isfinite(array)).sum())
        log.warning("replaced %d non-finite samples with silence", bad)
        array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(array, -1.0, 1.0).astype(np.float32, copy=False)


def _scale_to_float(array: np.ndarray) -> np.ndarray:
    if array.dtype.kind == "f":
        return array.astype(np.float32, copy=False)
    if array.dtype.kind == "u":
        info = np.iinfo(array.dtype)
        middle = (int(info.max) + 1) / 2
        return ((array.astype(np.float64) - middle) / middle).astype(np.float32)
    info = np.iinfo(array.dtype)
    return (array.astype(np.float64) / -float(info.min)).astype(np.float32)


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float32 mono in [-1, 1] to int16 PCM."""
    return (np.clip(samples, -1.0, 1.0) * 32767.0).astype(np.int16)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Resample a whole mono float32 buffer (soxr, high quality)."""
    from_rate, to_rate = check_sample_rate(from_rate), check_sample_rate(to_rate)
    if from_rate == to_rate or samples.size == 0:
        return samples.astype(np.float32, copy=False)
    return soxr.resample(samples, from_rate, to_rate, quality="HQ").astype(np.float32, copy=False)


class StreamResampler:
    """Resample a stream chunk by chunk without clicks at chunk edges (soxr's streaming mode).

    The input rate may change mid-stream (a browser renegotiating); the stream is then restarted.
    """

    def __init__(self, to_rate: int) -> None:
        self.to_rate = check_sample_rate(to_rate)
        self._from_rate: int | None = None
        self._stream: soxr.ResampleStream | None = None

    def __call__(self, samples: np.ndarray, from_rate: int) -> np.ndarray:
        from_rate = check_sample_rate(from_rate)
        if from_rate == self.to_rate:
            return samples
        if from_rate != self._from_rate:
            self._from_rate = from_rate
            self._stream = soxr.ResampleStream(from_rate, self.to_rate, 1, dtype="float32")
        assert self._stream is not None
        return self._stream.resample_chunk(samples.astype(np.float32, copy=False))


class LowDelayResampler:
    """A stream resampler for live paths, where what a resampler holds back is latency: FFmpeg's swresample
    (PyAV) holds ~1 ms, where soxr HQ's streaming mode (:class:`StreamResampler`) holds 21-33 ms until more
    input comes. Flat to 7 kHz at 16 kHz out (-60 dB at 9 kHz), to 10 kHz from 22.05 kHz. Same call as
    :class:`StreamResampler`; a new input rate restarts the stream."""

    def __init__(self, to_rate: int) -> None:
        self.to_rate = check_sample_rate(to_rate)
        self._from_rate: int | None = None
        self._resampler: object | None = None

    def __call__(self, samples: np.ndarray, from_rate: int) -> np.ndarray:
        import av

        from_rate = check_sample_rate(from_rate)
        if samples.size == 0:
            return samples
        held = np.zeros(0, np.float32)
        if from_rate != self._from_rate and self._resampler is not None:
            held = self._drain()  # the old stream's last ~1 ms comes out first, not lost
        if from_rate == self.to_rate:
            return np.concatenate([held, samples]) if held.size else samples
        if from_rate != self._from_rate:
            self._from_rate = from_rate
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.to_rate)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples, np.float32).reshape(1, -1), format="flt", layout="mono")
        frame.sample_rate = from_rate
        out = _joined(self._resampler.resample(frame))  # type: ignore[attr-defined]
        return np.concatenate([held, out]) if held.size else out

    def prime(self, from_rate: int) -> None:
        """Set the stream up for ``from_rate`` now (FFmpeg builds its filter graph on the first piece: a few
        ms that would otherwise fall on the first reply); one silent sample goes in, its output is dropped."""
        self(np.zeros(1, np.float32), from_rate)

    def flush(self) -> np.ndarray:
        """What is held back (the end of a reply); a fresh stream at the same rate is then primed."""
        rate = self._from_rate
        if self._resampler is None or rate is None:
            return np.zeros(0, np.float32)
        tail = self._drain()
        self.prime(rate)
        return tail

    def _drain(self) -> np.ndarray:
        """End the current stream: what it still holds."""
        tail = _joined(self._resampler.resample(None))  # type: ignore[attr-defined]
        self._resampler = self._from_rate = None
        return tail


def _joined(frames: list) -> np.ndarray:
    out = [frame.to_ndarray().reshape(-1) for frame in frames]
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def chunks(samples: np.ndarray, size: int) -> list[np.ndarray]:
    """Split into consecutive chunks of ``size`` samples (the last may be shorter)."""
    if size <= 0:
        raise ValueError("chunk size must be positive")
    return [samples[i : i + size] for i in range(0, len(samples), size)]


SILENT_DBFS = -60.0  # quieter than this, an output chunk counts as silence
AUDIBLE_WINDOW_S = 0.005  # the resolution of "first / last audible sample"


def rms_dbfs(samples: np.ndarray) -> float:
    """Root-mean-square level in dBFS (-120 for silence or empty input)."""
    if samples.size == 0:
        return -120.0
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(-120.0, 20.0 * np.log10(rms + 1e-12))


def loud_span(samples: np.ndarray, rate: int, threshold_dbfs: float, window_s: float = 0.02) -> tuple[int, int] | None:
    """Samples [start, end) from the first to the last window (``window_s``; the last one may be short)
    louder than ``threshold_dbfs``, or None when no window is."""
    size = max(1, int(rate * window_s))
    count = -(-len(samples) // size)
    padded = np.zeros(count * size, dtype=np.float64)
    padded[: len(samples)] = samples
    lengths = np.full(count, size)
    if count:
        lengths[-1] = len(samples) - (count - 1) * size
    power = np.square(padded).reshape(count, size).sum(axis=1) / lengths
    loud = np.flatnonzero(10.0 * np.log10(power + 1e-24) > threshold_dbfs)
    if not loud.size:
        return None
    return int(loud[0]) * size, min(len(samples), (int(loud[-1]) + 1) * size)


def match_level(samples: np.ndarray, target_dbfs: float = -23.0, peak: float = 0.95) -> np.ndarray:
    """Scale to ``target_dbfs`` RMS, but never past ``peak``; silence stays silence."""
    level = rms_dbfs(samples)
    if not len(samples) or level <= -90.0:
        return samples.astype(np.float32, copy=True)
    gain = 10 ** ((target_dbfs - level) / 20)
    top = float(np.abs(samples).max()) * gain
    if top > peak:
        gain *= peak / top
    return (samples * gain).astype(np.float32)


def encode_wav(samples: np.ndarray, sample_rate: int) -> bytes:
    """Encode mono float32 samples as a 16-bit PCM WAV file."""
    buffer = io.BytesIO()
    sf.write(buffer, samples, check_sample_rate(sample_rate), format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def decode_audio(data: bytes) -> tuple[np.ndarray, int]:
    """Decode WAV/FLAC/OGG bytes to mono float32 and its sample rate."""
    if not data:
        raise AudioError("audio file is empty")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for garbage
        raise AudioError(f"could not decode audio: {exc}") from None
    return to_mono_float32(samples.T), check_sample_rate(rate)


def sound_file_name(path: str | os.PathLike[str]) -> str | bytes:
    """``path`` as soundfile should get it: as text where it encodes (its errors then name it readably), else
    as bytes (soundfile encodes text strictly, so a file name that is not UTF-8 could not be opened)."""
    text = os.fspath(path)
    try:
        text.encode(sys.getfilesystemencoding())
    except UnicodeEncodeError:
        return os.fsencode(text)
    return text


def read_audio(path: str, target_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read an audio file as mono float32, optionally resampled to ``target_rate``."""
    try:
        samples, rate = sf.read(sound_file_name(path), dtype="float32", always_2d=True)
    except Exception as exc:  # noqa: BLE001
        raise AudioError(f"could not read audio file {path}: {exc}") from None
    mono = to_mono_float32(samples.T)
    rate = check_sample_rate(rate)
    if target_rate is not None and target_rate != rate:
        return resample(mono, rate, target_rate), target_rate
    return mono, rate


def audible_span(samples: np.ndarray, rate: int, threshold_dbfs: float = SILENT_DBFS) -> tuple[int, int] | None:
    """Samples [start, end) from the first to the last 5 ms window louder than ``threshold_dbfs`` (None: silent).

    The one definition of "audible" of every measurement (see :mod:`speechlm_demo.measure.observer`).
    """
    return loud_span(samples, rate, threshold_dbfs, AUDIBLE_WINDOW_S)
