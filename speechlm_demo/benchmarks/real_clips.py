"""Recordings of real human speech shipped inside packages on PyPI: where each lives and what it says.

Each :class:`RealSource` is located with :func:`importlib.util.find_spec` (never imported: several of these
packages pull torch when imported) and cut into turns by :mod:`.real_speech`. A source is one of:

* a single speaker (``kind="real"``): one turn, or the hand-picked stretches in ``turns`` (each a run of
  sentences with the speaker's own pauses inside, cut in the middle of a longer pause);
* a conversation (``kind="dialog"``): one turn per speaker turn, read from the package's own RTTM
  (``rttm``) and transcript (``stm``).

``text`` is what was said: documented by the package where ``text_source`` says so, else the published
passage that was read, else what Whisper base heard where it reads right; None when nobody is sure.
The packages checked and found to hold no usable human speech are listed in the README (prompt sets).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Stretch:
    """A turn picked by hand from a long single-speaker clip: ``[start_s, end_s]`` of the clip, and its words."""

    start_s: float
    end_s: float
    text: str


@dataclass(frozen=True)
class RealSource:
    """One recording inside a package, and how to cut it into turns."""

    name: str
    module: str  # located with importlib.util.find_spec, never imported
    relative: str  # the recording, relative to the module's folder
    pip: str  # what to install (always --no-deps)
    kind: str  # "real" (one speaker) or "dialog" (turns of a conversation)
    licence: str
    origin: str
    text: str | None = None
    text_source: str = ""
    turns: tuple[Stretch, ...] = ()  # empty: the whole clip is one turn (or the RTTM's turns for a dialog)
    rttm: str | None = None  # the package's speaker annotation, relative to the module's folder
    stm: str | None = None  # the package's transcript per speaker segment
    optional: bool = False  # a big package, in requirements-prompts.txt only (not installed by setup or CI)


TWO_CITIES = (  # the opening of A Tale of Two Cities (1859, public domain), cut where the reader pauses longest
    Stretch(0.9, 13.15, "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
            "foolishness, it was the epoch of belief, it was the epoch of incredulity,"),
    Stretch(13.15, 20.9, "it was the season of Light, it was the season of Darkness, it was the spring of hope, it was the "
            "winter of despair,"),
    Stretch(20.9, 28.74, "we had everything before us, we had nothing before us, we were all going direct to Heaven, we "
            "were all going direct the other way"),
    Stretch(28.74, 42.4, "in short, the period was so far like the present period, that some of its noisiest authorities "
            "insisted on its being received, for good or for evil, in the superlative degree of comparison only."),
)
HEARD = "as Whisper base heard it (not documented by the package)"
HEARD_FIXED = HEARD[:-1] + "; misheard names and numbers corrected by hand)"
LJ_LICENCE = "Apache-2.0 (the package); LJ Speech recordings are public domain"
MYSELF_LICENCE = "Apache-2.0 (the package); by the folder's name the author's own voice, not otherwise documented"
STELLA = "the Speech Accent Archive's elicitation paragraph (\"Please call Stella...\"), published text"
STELLA_TEXT = "Six spoons of fresh snow peas, five thick slabs of blue cheese, and maybe a snack for her brother Bob."


def f5_clip(name: str, example: str, origin: str, text: str, text_source: str) -> RealSource:
    """A voice of F5-TTS's examples (``infer/examples/<example>``): one speaker, one turn; the package and
    licence are the same for all of them."""
    return RealSource(
        name=name, module="f5_tts", relative=f"infer/examples/{example}", pip="f5-tts==1.1.22", kind="real",
        licence="MIT (the package); the clip's own origin is not documented", origin=origin, text=text,
        text_source=text_source,
    )


SOURCES: tuple[RealSource, ...] = (
    RealSource(
        name="pyannote-call", module="pyannote.audio", relative="sample/sample.wav", pip="pyannote.audio==4.0.7",
        kind="dialog", licence="MIT (the package); the recording's own origin is not documented",
        origin="pyannote's sample: a two-person telephone call, 30 s, with its RTTM diarization and STM transcript",
        rttm="sample/sample.rttm", stm="sample/sample.stm", text_source="the package's sample.stm",
    ),
    RealSource(
        name="moonshine-two-cities", module="moonshine_voice", relative="assets/two_cities.wav", pip="moonshine-voice==0.0.4",
        kind="real", licence="MIT (the package)",
        origin="Moonshine's test clip: one reader, the opening of A Tale of Two Cities, 44 s, 48 kHz",
        turns=TWO_CITIES, text_source="the novel's published text, split where the reader pauses", optional=True,
    ),
    RealSource(
        name="moonshine-beckett", module="moonshine_onnx", relative="assets/beckett.wav", pip="useful-moonshine-onnx==20251121",
        kind="real", licence="MIT (the package)",
        origin="Moonshine's test clip: one speaker, six short sentences with 0.7-1.1 s between them, room tone",
        text="Ever tried. Ever failed. No matter. Try again. Fail again. Fail better.",
        text_source="Samuel Beckett's published line (Worstward Ho)",
    ),
    f5_clip("f5-nature", "basic/basic_ref_en.wav", "F5-TTS's English reference voice: two sentences, 5 s",
            "Some call me nature, others call me mother nature.", "the package's infer/examples/basic/basic.toml (ref_text)"),
    f5_clip("f5-stella-main", "multi/main.flac", "F5-TTS's story narrator voice: a reading of the Stella paragraph, 7 s",
            STELLA_TEXT, STELLA),
    f5_clip("f5-stella-country", "multi/country.flac", "F5-TTS's 'country' voice: another reader of the Stella paragraph, 7.5 s",
            STELLA_TEXT, STELLA),
    f5_clip("f5-rainbow", "multi/town.flac", "F5-TTS's 'town' voice: a sentence of the Rainbow Passage, 9.5 s",
            "The difference in the rainbow depends considerably upon the size of the drops, and the width of the "
            "colored band increases as the size of the drops increases.", "the Rainbow Passage (Fairbanks), published text"),
    RealSource(
        name="tortoise-lj-1", module="tortoise", relative="voices/lj/1.wav", pip="tortoise-tts==3.0.0", kind="real",
        licence=LJ_LICENCE, origin="Tortoise's 'lj' reference voice: LJ Speech sentences read by one speaker, 9.6 s",
        text="especially as regards the lower case letters; and type very similar was used during the next fifteen or "
             "twenty years not only by Schoeffer", text_source=HEARD_FIXED, optional=True,
    ),
    RealSource(
        name="tortoise-lj-2", module="tortoise", relative="voices/lj/2.wav", pip="tortoise-tts==3.0.0", kind="real",
        licence=LJ_LICENCE, origin="Tortoise's 'lj' reference voice: an LJ Speech sentence with its reader's pauses, 9 s",
        text="using throughout for their cement hot bitumen, and interposing a layer of wattled reeds at every thirtieth "
             "course of the bricks", text_source=HEARD_FIXED, optional=True,
    ),
    RealSource(
        name="tortoise-myself-1", module="tortoise", relative="voices/myself/1.wav", pip="tortoise-tts==3.0.0", kind="real",
        licence=MYSELF_LICENCE, origin="Tortoise's 'myself' reference voice: a fairy tale read aloud, 10.7 s",
        text="There were once three billy goats who lived in a meadow at the foot of a mountain, and their last name was "
             "Gruff. There was the big Billy Goat Gruff, the middle-sized Billy Goat Gruff, and the little Billy Goat Gruff.",
        text_source=HEARD_FIXED, optional=True,
    ),
    RealSource(
        name="tortoise-myself-2", module="tortoise", relative="voices/myself/2.wav", pip="tortoise-tts==3.0.0", kind="real",
        licence=MYSELF_LICENCE, origin="Tortoise's 'myself' reference voice: a story read aloud, 9.2 s",
        text="There was still left to him a little house in the country, and to this, when everything else in the world had "
             "been sold, he retired. His three daughters of course went with him.", text_source=HEARD, optional=True,
    ),
    RealSource(
        name="amfm-define", module="amfm_decompy", relative="sample.wav", pip="amfm_decompy==1.0.12.2",
        kind="real", licence="MIT (the package)", origin="AMFM_decompy's example: one short question, 0.9 s, no pause after it",
        text="How do we define it?", text_source=HEARD,
    ),
    RealSource(
        name="gradio-ledger", module="gradio", relative="media_assets/audio/heath_ledger.mp3", pip="gradio (a core dependency)",
        kind="real", licence="Apache-2.0 (the package); a film line, its own rights not stated: read in place, never redistributed",
        origin="Gradio's demo asset: one acted sentence, 3 s", text="If you're good at something, never do it for free.",
        text_source=HEARD,
    ),
    RealSource(
        name="gradio-blanchett", module="gradio", relative="media_assets/audio/cate_blanch.mp3", pip="gradio (a core dependency)",
        kind="real", licence="Apache-2.0 (the package); a film excerpt, its own rights not stated: read in place, never redistributed",
        origin="Gradio's demo asset: three acted sentences with 0.6-0.8 s pauses, 8 s", text=None,
        text_source="none: not documented, and not heard with certainty",
    ),
    RealSource(
        name="gradio-blanchett-2", module="gradio", relative="media_assets/audio/cate_blanch_2.mp3", pip="gradio (a core dependency)",
        kind="real", licence="Apache-2.0 (the package); a film line, its own rights not stated: read in place, never redistributed",
        origin="Gradio's demo asset: one acted sentence, 4 s", text="I trust you had an historic evening.",
        text_source=HEARD,
    ),
)


def module_dir(module: str) -> Path | None:
    """The folder of an installed package, found without importing it (None when not installed).

    For a dotted name only the parent package is imported by :func:`importlib.util.find_spec`; the real
    parents here (``pyannote``) are namespace packages, so no package code runs.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def locate(source: RealSource, relative: str | None = None) -> Path | None:
    """The installed file ``relative`` (default: the recording) of ``source``, or None."""
    folder = module_dir(source.module)
    if folder is None:
        return None
    path = folder / (relative or source.relative)
    return path if path.is_file() else None
