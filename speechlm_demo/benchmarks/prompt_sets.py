"""Make benchmark prompt sets with espeak-ng: complete questions, questions with a thinking pause, the
complete questions in noise, and questions followed by an interruption.

``python -m speechlm_demo make-prompts DIR`` writes ``DIR/complete/*.wav``, ``DIR/paused/*.wav``,
``DIR/noisy/*.wav`` and ``DIR/interrupt/*.wav`` (and the varied and held-out sets of :mod:`.varied_prompts`, the
real voices of :mod:`.real_speech` and the Piper-spoken set of :mod:`.natural_prompts`),
each with ``.txt`` (reference text) and ``.json`` (``speech_end_s``, the true end of speech, and the set's cue
times) sidecars. The paused set is the turn-taking stress test: an unfinished phrase, 0.7-1.1 s of silence
(``pause_start_s``/``pause_end_s``), the rest. The noisy set adds Gaussian noise ``NOISE_DB`` under the
speech's level, everywhere. The interrupt set is for full-duplex engines: a question, ``INTERRUPT_AFTER_S`` of
silence in which the engine should be answering, then a second utterance that talks over it
(``question_end_s``, ``interrupt_start_s``, ``interrupt_end_s``; see :mod:`speechlm_demo.judges.duplex`).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import zlib
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import resample

RATE = 16_000
VOICE = "en"  # espeak-ng's British voice: Whisper base hears it better than en-us

COMPLETE = (
    "What is the capital of France?",
    "How many legs does a spider have?",
    "Tell me a joke about cats.",
    "What is the boiling point of water?",
    "Who wrote Romeo and Juliet?",
    "How far away is the moon?",
    "Give me a fun fact about octopuses.",
    "What is the largest ocean on Earth?",
    "Why is the sky blue?",
    "Recommend a good book for a long flight.",
)
PAUSED = (
    ("Well", "which planet is the largest?"),
    ("Can you explain", "how a rainbow forms?"),
    ("So", "what is the tallest mountain in the world?"),
    ("I was wondering if", "you could tell me a joke."),
    ("Tell me about", "the history of chess."),
    ("What is the", "speed of light?"),
)
PAUSES_S = (0.7, 0.9, 1.1)
NOISE_DB = 25.0  # the noisy set's noise, under the speech's mean level (a loud room)
INTERRUPTIONS = ("Wait, stop, I have another question.", "Sorry, can you say that more slowly?", "Hold on, never mind that.")
INTERRUPT_AFTER_S = 2.5  # silence between the question and the interruption


def speak(text: str, rate: int = RATE, voice: str = VOICE, words_per_minute: int = 165) -> np.ndarray:
    """espeak-ng speech, trimmed of its leading/trailing silence, as float32 at ``rate``."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt-get install espeak-ng)")
    command = ["espeak-ng", "-v", voice, "-s", str(words_per_minute), "--stdout", text]
    wav = subprocess.run(command, capture_output=True, check=True).stdout
    samples, native = sf.read(io.BytesIO(wav), dtype="float32")
    audio = resample(samples, native, rate)
    loud = np.flatnonzero(np.abs(audio) > 0.01)
    return audio[loud[0] : loud[-1] + 1] * 0.8 if loud.size else audio


def _write(
    folder: Path,
    name: str,
    audio: np.ndarray,
    text: str,
    lead_s: float = 0.3,
    tail_s: float = 0.5,
    noise_db: float | None = None,
    cues: dict[str, float] | None = None,
) -> None:
    """One prompt WAV and its sidecars; ``cues`` are times (s) within ``audio``, written shifted by the lead."""
    padded = np.concatenate([np.zeros(int(lead_s * RATE), np.float32), audio, np.zeros(int(tail_s * RATE), np.float32)])
    if noise_db is not None:
        speech_power = float(np.mean(np.square(audio[np.abs(audio) > 0.01])))
        noise = np.random.default_rng(zlib.crc32(name.encode())).normal(0.0, 1.0, len(padded))
        padded = (padded + noise * np.sqrt(speech_power) * 10 ** (-noise_db / 20)).astype(np.float32)
    sf.write(folder / f"{name}.wav", padded, RATE, subtype="PCM_16")
    (folder / f"{name}.txt").write_text(text + "\n")
    times = {"speech_end_s": len(audio) / RATE, **(cues or {})}
    (folder / f"{name}.json").write_text(json.dumps({key: round(lead_s + value, 3) for key, value in times.items()}))


def make_prompts(directory: Path, seed: int = 0) -> dict[str, int]:
    """Write every set; returns how many prompts each has. ``seed`` picks the Piper sets' rendering (see
    :mod:`.natural_prompts`); the espeak-ng sets and the real voices do not depend on it."""
    complete, paused, noisy, interrupt = directory / "complete", directory / "paused", directory / "noisy", directory / "interrupt"
    for folder in (complete, paused, noisy, interrupt):
        folder.mkdir(parents=True, exist_ok=True)
    for index, text in enumerate(COMPLETE):
        audio = speak(text)
        _write(complete, f"q{index:02d}", audio, text)
        _write(noisy, f"q{index:02d}", audio, text, noise_db=NOISE_DB)
    count = 0
    for index, (opener, rest) in enumerate(PAUSED):
        first, second = speak(opener), speak(rest)
        for pause in PAUSES_S:
            audio = np.concatenate([first, np.zeros(int(pause * RATE), np.float32), second])
            cues = {"pause_start_s": len(first) / RATE, "pause_end_s": (len(first) + int(pause * RATE)) / RATE}
            _write(paused, f"p{index:02d}_{int(pause * 1000)}ms", audio, f"{opener} {rest}", cues=cues)
            count += 1
    for index, words in enumerate(INTERRUPTIONS):
        question, cut_in = speak(COMPLETE[index]), speak(words)
        gap = np.zeros(int(INTERRUPT_AFTER_S * RATE), np.float32)
        start = (len(question) + len(gap)) / RATE
        cues = {"question_end_s": len(question) / RATE, "interrupt_start_s": start, "interrupt_end_s": start + len(cut_in) / RATE}
        _write(interrupt, f"i{index:02d}", np.concatenate([question, gap, cut_in]), f"{COMPLETE[index]} {words}", cues=cues)
    from .natural_prompts import make_natural
    from .real_speech import make_real
    from .varied_prompts import make_varied

    counts = {"complete": len(COMPLETE), "paused": count, "noisy": len(COMPLETE), "interrupt": len(INTERRUPTIONS)}
    real, _ = make_real(directory)  # a missing package is skipped with its reason logged
    return counts | make_varied(directory) | {
        "real": real, "natural": make_natural(directory, seed=seed), "fresh": make_natural(directory, "fresh", seed=seed)}
