"""The ``natural/`` prompt set: the four turn-taking kinds spoken by a neural voice (Piper), in new words.

espeak-ng's prosody is far from a person's, and a learned end-of-turn model (Smart Turn) trained on human
speech reads it badly. Piper's ``en_US-joe-medium`` voice (the one the cascade answers with, shipped on
PyPI) has more human intonation; ``length_scale`` varies its rate (0.85 fast ... 1.25 slow).

``make-prompts DIR`` writes ``DIR/natural/KIND-NN[_PAUSEms].wav`` with the sidecars of the varied set
(``speech_end_s``, exact ``segments``, ``kind``, ``voice``, ``length_scale``). The sentences are new: none
appears in the varied or held-out sets. **This set is never used for tuning**: it is a second unseen
figure beside ``heldout/``; a knob tuned on it would make it worthless.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..audio import resample
from ..engines.base import EngineError
from .varied_prompts import PAUSES_S, RATE, write_parts

if TYPE_CHECKING:
    from ..engines.cascade.tts import PiperTTS

log = logging.getLogger(__name__)

LENGTH_SCALES = (0.85, 1.0, 1.15, 1.25)  # Piper's phoneme durations: < 1 faster, > 1 slower
TRIM_LEVEL = 0.01  # as speak(): leading/trailing samples quieter than this are Piper's own silence

# kind -> prompts; each prompt is its spoken parts (a pause between consecutive parts); never for tuning
NATURAL: dict[str, tuple[tuple[str, ...], ...]] = {
    "complete": (("what is the longest river in africa",), ("remind me how to boil an egg",),
                 ("which bird can fly backwards",), ("translate good morning into spanish",)),
    "leadin": (("I have been learning to bake bread", "why does my dough not rise"),
               ("Here is something I never understood", "why is the sea blue"),
               ("My daughter asked me today", "how do airplanes stay up"),
               ("Quick question about the weather", "will it snow this weekend")),
    "two": (("I bought a new bicycle", "how often should I oil the chain"),
            ("We adopted a kitten yesterday", "what should we feed her"),
            ("The printer keeps jamming", "is it worth fixing"),
            ("My grandmother turns ninety soon", "what could we give her")),
    "unfinished": (("how long does it take to", "fly from london to tokyo"),
                   ("could you explain what the", "stock market actually does"),
                   ("I always forget whether", "spiders are insects"),
                   ("the best thing about", "autumn is the colours do you agree")),
}


def piper_speak(tts: PiperTTS, text: str) -> np.ndarray:
    """``text`` spoken by ``tts`` at :data:`RATE`, trimmed of its leading and trailing silence."""
    chunks = [np.asarray(chunk, np.float32) for chunk in tts.synthesize(text)]
    if not chunks:
        raise EngineError(f"Piper said nothing for {text!r}")
    audio = resample(np.concatenate(chunks), tts.sample_rate, RATE)
    loud = np.flatnonzero(np.abs(audio) > TRIM_LEVEL)
    if not loud.size:
        raise EngineError(f"Piper's audio for {text!r} is silent")
    return audio[loud[0] : loud[-1] + 1]


def make_natural(directory: Path) -> int:
    """Write ``directory/natural/``; how many prompts were written (0, with the reason logged, without Piper)."""
    try:
        from ..engines.cascade.tts import PiperTTS

        voices = [PiperTTS(length_scale=scale) for scale in LENGTH_SCALES]
    except (ImportError, EngineError) as exc:
        log.warning("natural/ skipped: the Piper voice is not available (%s)", exc)
        return 0
    folder = directory / "natural"
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for kind, items in NATURAL.items():
        for index, parts in enumerate(items):
            scale = LENGTH_SCALES[(index + len(kind)) % len(LENGTH_SCALES)]
            tts = voices[LENGTH_SCALES.index(scale)]
            spoken = [piper_speak(tts, part) for part in parts]
            voice = {"voice": f"piper:{tts.voice_name}", "length_scale": scale}
            for pause in PAUSES_S.get(kind, (None,)):
                write_parts(folder, kind, index, parts, spoken, pause, voice)
                count += 1
    return count
