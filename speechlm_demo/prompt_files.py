"""Read a folder of prompt recordings for ``bench`` and ``session prepare``, saying what was skipped and why.

Every file soundfile (libsndfile) reads is a prompt: WAV, FLAC, OGG/Vorbis/Opus, AIFF, MP3 where
libsndfile has it, and the rest of :func:`soundfile.available_formats`. ``NAME.txt`` and ``NAME.json``
are sidecars. A file is skipped with its reason when it cannot be decoded, holds no samples (a header
only), is too short to be speech or is silent; a file whose data stops before its header's length
(truncated) or whose stereo channels cancel when mixed to mono (anti-phase) is used with a note; a
prompt longer than ``max_s`` is cut there, with a note, rather than fed in real time for ever.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from .audio import AudioError, check_sample_rate, loud_span, resample, rms_dbfs, sound_file_name, to_mono_float32

log = logging.getLogger(__name__)

SIDECARS = frozenset({".txt", ".json"})
EXTRA_SUFFIXES = {"AIFF": (".aif",), "OGG": (".oga", ".opus"), "WAV": (".wave",)}
MAX_PROMPT_S = 60.0  # longer prompts are cut (a turn is at most max_turn_s anyway: 30 s for the cascade)
MIN_PROMPT_S = 0.2  # shorter than any word
SOUND_DBFS = -40.0  # a prompt needs at least one 20 ms window louder than this
CANCEL_DB = 20.0  # a mono mix this much quieter than its loudest channel: the channels cancel out


@dataclass
class PromptAudio:
    """One usable prompt file: mono float32 at the requested rate, with notes on what was done to it."""

    path: Path
    audio: np.ndarray
    notes: list[str] = field(default_factory=list)
    length_s: float | None = None  # the file's whole length (before any cut); None: the audio's


@dataclass
class Skipped:
    """A file that is not a prompt, and why."""

    name: str
    reason: str

    def __str__(self) -> str:
        return f"{self.name}: {self.reason}"


def audio_suffixes() -> frozenset[str]:
    """File name endings of every format this soundfile build reads (lower case, with the dot)."""
    formats = sf.available_formats()
    suffixes = {f".{name.lower()}" for name in formats}
    for name, extra in EXTRA_SUFFIXES.items():
        if name in formats:
            suffixes.update(extra)
    return frozenset(suffixes)


def read_prompt_folder(directory: Path, rate: int, max_s: float = MAX_PROMPT_S) -> tuple[list[PromptAudio], list[Skipped]]:
    """Every prompt file of ``directory`` (sorted by name) at ``rate``, and every file skipped with its reason.

    Sidecars (``.txt``, ``.json``) and hidden files are neither prompts nor skipped.
    """
    if not directory.is_dir():
        raise FileNotFoundError(f"prompt directory {directory} does not exist")
    suffixes = audio_suffixes()
    prompts: list[PromptAudio] = []
    skipped: list[Skipped] = []
    for path in sorted(directory.iterdir()):
        if path.name.startswith(".") or path.is_dir() or path.suffix.lower() in SIDECARS:
            continue
        if path.suffix.lower() not in suffixes:
            skipped.append(Skipped(path.name, "not an audio format soundfile reads"))
            continue
        try:
            prompts.append(read_prompt(path, rate, max_s))
        except AudioError as exc:
            skipped.append(Skipped(path.name, str(exc)))
    return prompts, skipped


def read_prompt(path: Path, rate: int, max_s: float = MAX_PROMPT_S) -> PromptAudio:
    """One prompt file as mono float32 at ``rate``; :class:`AudioError` with the reason if it is unusable."""
    try:
        info = sf.info(sound_file_name(path))
        with sf.SoundFile(sound_file_name(path)) as file:
            native = check_sample_rate(file.samplerate)
            wanted = file.frames if max_s <= 0 else min(file.frames, int(max_s * native))
            samples = file.read(wanted, dtype="float32", always_2d=True)
    except AudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for damaged files
        raise AudioError(f"could not decode: {exc}") from None
    notes: list[str] = []
    if info.frames == 0 or not len(samples):
        raise AudioError("no samples (a header without audio data)")
    declared = _declared_frames(info)
    if declared is not None and declared > info.frames:
        notes.append(f"truncated: the header announces {declared / native:.2f} s, the file holds {info.frames / native:.2f} s")
    if max_s > 0 and info.frames > len(samples):
        notes.append(f"cut to its first {max_s:g} s (of {info.frames / native:.1f} s)")
    mix = np.abs(np.where(np.isfinite(samples), samples, 0.0).mean(axis=1))  # before the downmix clips it
    if mix.max() > 1.0:  # a float file written too loud: clipped, as live input is
        notes.append(f"{int((mix > 1.0).sum())} sample(s) of the mix above full scale (peak {mix.max():.2f}) clipped to ±1")
    mono = _downmix(samples, notes)
    if len(mono) < MIN_PROMPT_S * native:
        raise AudioError(f"too short: {len(mono)} sample(s), {len(mono) / native:.3f} s (a prompt needs {MIN_PROMPT_S:g} s)")
    if loud_span(mono, native, SOUND_DBFS) is None:
        raise AudioError(f"silent: no 20 ms stretch louder than {SOUND_DBFS:g} dBFS")
    for note in notes:
        log.warning("%s: %s", path.name, note)
    return PromptAudio(path, resample(mono, native, rate) if native != rate else mono, notes, info.frames / native)


def _downmix(samples: np.ndarray, notes: list[str]) -> np.ndarray:
    """Mono mix of (frames, channels); the loudest channel alone when the mix cancels out (anti-phase)."""
    mono = to_mono_float32(samples.T)
    if samples.shape[1] < 2:
        return mono
    levels = [rms_dbfs(to_mono_float32(samples[:, c])) for c in range(samples.shape[1])]
    loudest = int(np.argmax(levels))
    if levels[loudest] > SOUND_DBFS and rms_dbfs(mono) < levels[loudest] - CANCEL_DB:
        notes.append(
            f"its channels cancel out when mixed to mono (anti-phase: the mix is {levels[loudest] - rms_dbfs(mono):.0f} dB "
            f"under channel {loudest + 1}); channel {loudest + 1} alone is used"
        )
        return to_mono_float32(samples[:, loudest])
    return mono


def _declared_frames(info: sf._SoundFileInfo) -> int | None:
    """For a WAV whose data chunk claims more bytes than the file holds, the frames it claims; else None."""
    for line in info.extra_info.splitlines():
        # libsndfile's log for such a file: "data : 320000 (should be 3000)"
        words = line.replace(":", " ").replace("(", " ").replace(")", " ").split()
        if len(words) >= 5 and words[0] == "data" and words[2:4] == ["should", "be"] and words[1].isdigit():
            block = max(1, info.channels * _bytes_per_sample(info.subtype))
            return int(words[1]) // block
    return None


def _bytes_per_sample(subtype: str) -> int:
    """Bytes per sample of an uncompressed subtype (1 when unknown)."""
    for bits, size in (("8", 1), ("16", 2), ("24", 3), ("32", 4), ("64", 8)):
        if subtype.endswith(bits) or subtype == f"FLOAT{bits}":
            return size
    return {"FLOAT": 4, "DOUBLE": 8, "ULAW": 1, "ALAW": 1}.get(subtype, 1)


def reference_text(path: Path) -> str | None:
    """The reference text in ``path`` (UTF-8, stripped), None without one; ValueError naming the file when it
    cannot be read (``bench``, ``session prepare`` and ``judge`` read ``NAME.txt`` this one way)."""
    if not path.is_file():
        return None
    try:
        return path.read_text(encoding="utf-8").strip()
    except UnicodeDecodeError as exc:
        raise ValueError(f"unreadable reference text {path.name}: not UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ValueError(f"unreadable reference text {path.name}: {exc}") from None
