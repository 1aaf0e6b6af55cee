"""The ``natural/`` prompt set: the four turn-taking kinds spoken by a neural voice (Piper), in new words.

espeak-ng's prosody is far from a person's, and a learned end-of-turn model (Smart Turn) trained on human
speech reads it badly. Piper's ``en_US-joe-medium`` voice (the one the cascade answers with, shipped on
PyPI) has more human intonation; ``length_scale`` varies its rate (0.85 fast ... 1.25 slow).

``make-prompts DIR`` writes ``DIR/natural/KIND-NN[_PAUSEms].wav`` with the sidecars of the varied set
(``speech_end_s``, exact ``segments``, ``kind``, ``voice``, ``length_scale``). The sentences are new: none
appears in the varied or held-out sets. **This set is never used for tuning**: it is a second unseen
figure beside ``heldout/``; a knob tuned on it would make it worthless.

``fresh/`` is a third such set in the same voice, in words written on 2026-12-03 after the cuts on
``heldout/`` and ``natural/`` had been studied (so those two had shaped a rule) and before any rule was tried
on it: the figure for a rule whose idea came from the other unseen sets.

Piper samples noise as it speaks, so its audio differs run to run unless seeded: each voice's session is made
right after ``onnxruntime.set_seed`` (:func:`voice_seed` of the set, the rate and ``seed``), and the prompts are
spoken in a fixed order, so one ``seed`` gives the same audio on every run (on the same onnxruntime build), and
other seeds give other renderings of the same words: a cut count on one set is a sample, to be reported over
several seeds.
"""

from __future__ import annotations

import logging
import zlib
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

FRESH: dict[str, tuple[tuple[str, ...], ...]] = {
    "complete": (("how many legs does an octopus have",), ("what year did the first person walk on the moon",),
                 ("suggest a name for a grey cat",), ("is it safe to eat raw cookie dough",),
                 ("why do onions make people cry",), ("give me three tips for sleeping better",)),
    "leadin": (("I am planning a trip to Canada", "what is the best month to go"),
               ("My phone battery drains fast", "how can I make it last longer"),
               ("I want to start running", "how far should I run at first"),
               ("We are having friends over tonight", "what is an easy dessert to make"),
               ("Something has been bugging me", "why do we have leap years"),
               ("I read an article about sharks", "do they really never sleep")),
    "two": (("The tap in my kitchen drips all night", "can I fix it myself"),
            ("My son wants a pet snake", "are they hard to look after"),
            ("I found an old coin in the garden", "how do I know if it is valuable"),
            ("Our team lost again yesterday", "how do we stop losing"),
            ("The bread I bought went mouldy quickly", "where should I store it"),
            ("My neighbour plays loud music", "what should I say to him")),
    "unfinished": (("what is the difference between", "a frog and a toad"),
                   ("can you remind me how much", "sugar goes into a cake"),
                   ("I would love to know why", "the moon changes shape"),
                   ("tell me the name of the", "tallest mountain in europe"),
                   ("how do people manage to", "sleep on long flights"),
                   ("is there a way to", "learn to whistle with my fingers")),
}
SETS = {"natural": NATURAL, "fresh": FRESH}  # folder -> prompts


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


def voice_seed(name: str, scale: float, seed: int) -> int:
    """onnxruntime's seed for the ``scale`` voice of set ``name`` in rendering ``seed``."""
    return zlib.crc32(f"{name}:{scale}:{seed}".encode())


def _seeded_voice(name: str, scale: float, seed: int) -> PiperTTS:
    """The offline Piper voice at ``scale``, its noise seeded (onnxruntime takes the seed when the session is made)."""
    import onnxruntime as ort

    from ..engines.cascade.tts import PiperTTS

    ort.set_seed(voice_seed(name, scale, seed))
    return PiperTTS(length_scale=scale)


def make_natural(directory: Path, name: str = "natural", seed: int = 0) -> int:
    """Write ``directory/NAME/`` (a set of :data:`SETS`) in rendering ``seed``; how many prompts were written (0,
    with the reason logged, without Piper)."""
    try:
        voices = [_seeded_voice(name, scale, seed) for scale in LENGTH_SCALES]
    except (ImportError, EngineError) as exc:
        log.warning("%s/ skipped: the Piper voice is not available (%s)", name, exc)
        return 0
    folder = directory / name
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for kind, items in SETS[name].items():
        for index, parts in enumerate(items):
            scale = LENGTH_SCALES[(index + len(kind)) % len(LENGTH_SCALES)]
            tts = voices[LENGTH_SCALES.index(scale)]
            spoken = [piper_speak(tts, part) for part in parts]
            voice = {"voice": f"piper:{tts.voice_name}", "length_scale": scale, "seed": seed}
            for pause in PAUSES_S.get(kind, (None,)):
                write_parts(folder, kind, index, parts, spoken, pause, voice)
                count += 1
    return count
