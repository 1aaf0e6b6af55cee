"""Signal judges of one reply: duration, leading silence, loudness (ITU-R BS.1770 integrated LUFS), clipping,
speaking rate."""

from __future__ import annotations

import math

import numpy as np

from ..audio import loud_span

SPEECH_DBFS = -45.0  # a 20 ms window louder than this counts as sound (leading silence ends there)
CLIP_LEVEL = 0.999  # a sample at or above this magnitude is clipped
BLOCK_S = 0.4  # BS.1770 gating block, 75 % overlap
ABSOLUTE_GATE_LUFS = -70.0
RELATIVE_GATE_LU = -10.0


def _biquad(b: tuple[float, float, float], a: tuple[float, float, float], x: np.ndarray) -> np.ndarray:
    from scipy.signal import lfilter

    return lfilter(np.asarray(b), np.asarray(a), x)


def k_weighting(x: np.ndarray, rate: int) -> np.ndarray:
    """BS.1770 K-weighting (high-shelf "head" filter, then the RLB high-pass), designed for any ``rate``
    from the analogue prototypes (gain +4 dB above 1.68 kHz, high-pass at 38 Hz)."""
    gain_db, f_shelf, q_shelf = 3.999843853973347, 1681.974450955533, 0.7071752369554196
    k = math.tan(math.pi * f_shelf / rate)
    vh = 10 ** (gain_db / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q_shelf + k * k
    shelf_b = ((vh + vb * k / q_shelf + k * k) / a0, 2 * (k * k - vh) / a0, (vh - vb * k / q_shelf + k * k) / a0)
    shelf_a = (1.0, 2 * (k * k - 1) / a0, (1 - k / q_shelf + k * k) / a0)
    f_hp, q_hp = 38.13547087602444, 0.5003270373238773
    k = math.tan(math.pi * f_hp / rate)
    a0 = 1 + k / q_hp + k * k
    hp_a = (1.0, 2 * (k * k - 1) / a0, (1 - k / q_hp + k * k) / a0)
    return _biquad((1.0, -2.0, 1.0), hp_a, _biquad(shelf_b, shelf_a, x))


def integrated_loudness(audio: np.ndarray, rate: int) -> float | None:
    """Gated integrated loudness in LUFS (mono), or None when the clip is shorter than one 400 ms block or
    every block is below the absolute gate (silence)."""
    block = int(BLOCK_S * rate)
    if len(audio) < block:
        return None
    weighted = k_weighting(np.asarray(audio, dtype=np.float64), rate)
    step = block // 4
    starts = np.arange(0, len(weighted) - block + 1, step)
    energy = np.array([np.mean(np.square(weighted[s : s + block])) for s in starts])
    loudness = -0.691 + 10 * np.log10(energy + 1e-20)
    kept = energy[loudness > ABSOLUTE_GATE_LUFS]
    if not kept.size:
        return None
    relative = -0.691 + 10 * np.log10(kept.mean()) + RELATIVE_GATE_LU
    gated = energy[(loudness > ABSOLUTE_GATE_LUFS) & (loudness > relative)]
    return float(-0.691 + 10 * np.log10(gated.mean()))


def clipped_fraction(audio: np.ndarray) -> float:
    """Share of samples at full scale, counting only runs of two or more (a lone peak at 1.0 is not clipping)."""
    if audio.size < 2:
        return 0.0
    high = np.abs(audio) >= CLIP_LEVEL
    in_run = high & (np.r_[high[1:], False] | np.r_[False, high[:-1]])
    return float(in_run.mean())


def signal_judges(audio: np.ndarray, rate: int) -> dict[str, float | None]:
    """Duration (s), leading silence before the first sound (ms), loudness (LUFS), peak (dBFS) and clipped share."""
    audio = np.nan_to_num(np.asarray(audio, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)  # as the input guard does
    span = loud_span(audio, rate, SPEECH_DBFS) if audio.size else None
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    loudness = integrated_loudness(audio, rate)
    return {
        "duration_s": round(len(audio) / rate, 3),
        "speech_s": round((span[1] - span[0]) / rate, 3) if span else 0.0,
        "leading_silence_ms": round(1000.0 * span[0] / rate, 1) if span else None,
        "loudness_lufs": None if loudness is None else round(loudness, 2),
        "peak_dbfs": round(20 * math.log10(peak), 2) if peak > 0 else None,
        "clipping": round(clipped_fraction(audio), 5),
    }


def words_per_minute(text: str, speech_s: float) -> float | None:
    """Words of ``text`` per minute of sounding audio; None without words or sound."""
    words = len(text.split())
    if not words or speech_s <= 0:
        return None
    return round(60.0 * words / speech_s, 1)
