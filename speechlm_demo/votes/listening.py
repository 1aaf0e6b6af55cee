"""Listening sessions: blind A/B without a microphone, on replies generated ahead of time.

``python -m speechlm_demo session prepare --prompts DIR --engines a,b,c --name NAME`` runs every prompt
WAV of ``DIR`` through each engine, one turn at a time and in real time exactly like a live turn
(:func:`speechlm_demo.compare.answer`), its latency measured from the prompt's reference end of speech as in
``bench`` (the sidecar's ``speech_end_s``, else the offline estimate), and writes ``<data dir>/sessions/NAME/``:
``manifest.json`` (engines with their catalogue entries, prompts, every reply's status, transcript and timeline) and
``audio/`` (WAVs named by random ids, so no file name tells which engine made it). The Blind A/B tab opened
with ``?session=NAME`` then serves random pairs of replies to the same prompt; votes carry NAME as tag.
"""

from __future__ import annotations

import json
import logging
import random
import re
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import BaseModel, Field, ValidationError, model_validator

from ..audio import AudioError, encode_wav, read_audio
from ..catalog import EngineEntry
from ..compare import Comparison, SideResult, answer
from ..measure.feeding import load_prompts
from ..output_paths import output_folder_problem
from ..prompt_files import MAX_PROMPT_S, Skipped
from .store import data_dir

if TYPE_CHECKING:
    from ..engines.registry import EngineRegistry

log = logging.getLogger(__name__)

PROMPT_RATE = 16_000
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MANIFEST = "manifest.json"


class SessionError(ValueError):
    """A listening session that cannot be prepared or opened; the message is for the user."""


class SessionExists(SessionError):
    """``prepare`` was asked for a name already taken, without ``replace``."""


class _Reply(BaseModel):
    """One stored reply as the manifest describes it."""

    status: str
    message: str = ""
    user_text: str = ""
    reply_text: str = ""
    timeline: dict[str, Any] = Field(default_factory=dict)
    sample_rate: int = Field(ge=0)
    file: str | None = None


class _Prompt(BaseModel):
    """One prompt of the manifest with every engine's reply."""

    id: int
    file: str
    reference: str | None = None
    replies: dict[str, _Reply]


class _Manifest(BaseModel):
    """What :class:`ListeningSession` reads of ``manifest.json`` (other keys are ignored)."""

    engines: dict[str, EngineEntry]
    prompts: list[_Prompt]

    @model_validator(mode="after")
    def _replies_of_known_engines(self) -> _Manifest:
        for prompt in self.prompts:
            unknown = sorted(set(prompt.replies) - set(self.engines))
            if unknown:
                raise ValueError(f"prompt {prompt.id} has replies of engines the manifest does not list: {', '.join(unknown)}")
        return self


def _problems(exc: ValidationError) -> str:
    """The first few problems of a manifest, one short phrase each."""
    found = [f"{'.'.join(str(part) for part in error['loc']) or 'manifest'}: {error['msg']}" for error in exc.errors()[:3]]
    more = exc.error_count() - len(found)
    return "; ".join(found) + (f" (and {more} more)" if more > 0 else "")


def sessions_root() -> Path:
    """Where listening sessions live: ``<data dir>/sessions``."""
    return data_dir() / "sessions"


def check_name(name: str) -> str:
    """``name`` if it is a safe session name (letters, digits, ``_ . -``; no paths), else :class:`SessionError`."""
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name) or ".." in name:
        raise SessionError(f"{name!r} is not a valid session name (letters, digits, '_', '.', '-'; at most 64)")
    return name


def list_sessions(root: Path | None = None) -> list[str]:
    """Names of the prepared sessions."""
    base = root or sessions_root()
    return sorted(p.parent.name for p in base.glob(f"*/{MANIFEST}")) if base.is_dir() else []


def _reply_record(result: SideResult, audio_dir: Path) -> dict[str, Any]:
    record: dict[str, Any] = {
        "status": result.status,
        "message": result.message,
        "user_text": result.user_text,
        "reply_text": result.reply_text,
        "timeline": result.timeline,
        "sample_rate": result.sample_rate,
        "file": None,
    }
    if result.ok and len(result.audio):
        name = f"{uuid.uuid4().hex}.wav"
        (audio_dir / name).write_bytes(encode_wav(result.audio, result.sample_rate))
        record["file"] = name
    return record


def prepare(
    registry: EngineRegistry,
    prompts_dir: Path,
    engine_ids: Sequence[str],
    name: str,
    *,
    root: Path | None = None,
    timeout_s: float = 60.0,
    max_prompt_s: float = MAX_PROMPT_S,
    progress: Callable[[int, int, str], None] | None = None,
    replace: bool = False,
) -> Path:
    """Generate every engine's reply to every prompt and write the session; returns its folder.

    A session of that name already there raises :class:`SessionExists` before any work, unless ``replace``:
    then its folder (manifest and audio) is replaced once the new one is ready. Votes are rows of the vote
    store, not files of the session: the old votes keep the name as their tag, so ``--tag NAME`` counts the
    votes on the old replies and on the new ones together.

    An engine that cannot load, or fails a prompt, is recorded as failed there; :class:`SessionError`
    (with the reasons) if fewer than two engines are given, no prompt file is usable, or no prompt got a
    playable reply from two engines: then nothing is written. ``progress(done, total, text)`` is called
    once before the first reply (``done`` 0) and after each one. Files that are not usable prompts are
    listed with their reason in the manifest's ``skipped``.
    """
    check_name(name)
    folder = (root or sessions_root()) / name
    problem = output_folder_problem(folder.parent)
    if problem:
        raise SessionError(f"sessions cannot be written there: {problem}")
    if not replace:
        _refuse_existing(folder)
    ids = list(dict.fromkeys(engine_ids))
    unknown = [i for i in ids if i not in registry.availability]
    if unknown:
        raise SessionError(f"unknown engine(s): {', '.join(unknown)}; known: {', '.join(registry.availability)}")
    if len(ids) < 2:
        raise SessionError("a listening session needs at least two engines")
    skipped: list[Skipped] = []
    try:
        prompts = load_prompts(Path(prompts_dir), PROMPT_RATE, max_prompt_s, skipped)
    except FileNotFoundError as exc:
        raise SessionError(str(exc)) from None
    total, done = len(prompts) * len(ids), 0
    if progress is not None:
        progress(0, total, f"{len(prompts)} prompt(s) x {len(ids)} engines")
    staging = folder.with_name(f".{name}.{uuid.uuid4().hex[:8]}")
    try:
        (staging / "audio").mkdir(parents=True)
    except OSError as exc:
        raise SessionError(f"the session folder cannot be made: {exc}") from None
    try:
        entries = {i: registry.availability[i].entry for i in ids}
        manifest: dict[str, Any] = {
            "name": name,
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "engines": {i: e.model_dump(mode="json", by_alias=True) for i, e in entries.items()},
            "prompts": [],
            "skipped": [{"file": item.name, "reason": item.reason} for item in skipped],
        }
        for index, prompt in enumerate(prompts):
            prompt_file = f"{uuid.uuid4().hex}.wav"
            (staging / "audio" / prompt_file).write_bytes(encode_wav(prompt.audio, PROMPT_RATE))
            manifest["prompts"].append(
                {"id": index, "source": prompt.path.name, "file": prompt_file, "reference": prompt.reference, "notes": prompt.notes, "replies": {}}
            )
        for engine_id in ids:
            try:
                engine = registry.get(engine_id)
            except Exception as exc:  # noqa: BLE001 - recorded for every prompt, the others go on
                log.error("%s could not be loaded: %s", engine_id, exc)
                engine, failure = None, SideResult(engine_id, "failed", f"could not load: {exc}")
            for prompt, item in zip(prompts, manifest["prompts"], strict=True):
                result = failure if engine is None else answer(engine, prompt.audio, PROMPT_RATE, speech_end_s=prompt.speech_end_s, timeout_s=timeout_s)
                item["replies"][engine_id] = _reply_record(result, staging / "audio")
                done += 1
                if progress is not None:
                    progress(done, total, f"{engine_id} / {prompt.path.name}: {result.status}")
        _check_usable(manifest)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if not replace:
            _refuse_existing(folder)  # made by someone else while the replies were generated
        elif folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    return folder


def _refuse_existing(folder: Path) -> None:
    if folder.exists():
        raise SessionExists(
            f"a listening session named {folder.name!r} already exists; give --replace to replace it (its prompts and "
            f"replies are deleted; the votes already cast keep the tag {folder.name!r}, so the leaderboard's --tag "
            "then counts votes on the old and the new replies together), or choose another name"
        )


def _playable(reply: dict[str, Any]) -> bool:
    return reply["status"] == "ok" and bool(reply["file"])


def _check_usable(manifest: dict[str, Any]) -> None:
    """:class:`SessionError` naming what each engine did, unless some prompt has playable replies from two."""
    replies = [prompt["replies"] for prompt in manifest["prompts"]]
    if any(sum(_playable(r) for r in by_engine.values()) >= 2 for by_engine in replies):
        return
    lines = []
    for engine_id in manifest["engines"]:
        mine = [by_engine[engine_id] for by_engine in replies]
        playable = sum(_playable(r) for r in mine)
        problems = list(dict.fromkeys(r["message"] or ("no reply audio" if r["status"] == "ok" else r["status"]) for r in mine if not _playable(r)))
        lines.append(f"{engine_id}: {playable}/{len(mine)} playable" + (f" ({'; '.join(problems[:3])})" if problems else ""))
    raise SessionError("no prompt got a playable reply from two engines, so the session was not written: " + "; ".join(lines))


@dataclass
class ListeningPrompt:
    """One prompt of a session and the replies made to it."""

    index: int
    file: str
    reference: str | None
    replies: dict[str, dict[str, Any]]

    def answered_by(self) -> list[str]:
        """Engines with a playable reply to this prompt."""
        return [engine_id for engine_id, reply in self.replies.items() if reply["status"] == "ok" and reply["file"]]


class ListeningSession:
    """A prepared session, read from disk; draws prompts that at least two engines answered."""

    def __init__(self, name: str, root: Path | None = None) -> None:
        self.name = check_name(name)
        self.folder = (root or sessions_root()) / name
        path = self.folder / MANIFEST
        if not path.is_file():
            raise SessionError(f"there is no listening session named {name!r}")
        try:
            manifest = _Manifest.model_validate_json(path.read_bytes())
        except ValidationError as exc:
            raise SessionError(f"listening session {name!r} is damaged: {_problems(exc)}") from None
        except OSError as exc:
            raise SessionError(f"listening session {name!r} cannot be read: {exc.strerror or exc}") from None
        self.entries = manifest.engines
        self.prompts = [
            ListeningPrompt(p.id, p.file, p.reference, {i: reply.model_dump() for i, reply in p.replies.items()}) for p in manifest.prompts
        ]
        self.usable = [p for p in self.prompts if len(p.answered_by()) >= 2]
        if not self.usable:
            raise SessionError(f"listening session {name!r} has no prompt that two engines answered")

    def describe(self) -> str:
        """One line for the page (no engine names: they would unblind the votes)."""
        return f"Listening session **{self.name}**: {len(self.usable)} prompts, {len(self.entries)} engines."

    def draw(self, rng: random.Random) -> ListeningPrompt:
        """A random prompt that at least two engines answered."""
        return rng.choice(self.usable)

    def candidates(self, prompt: ListeningPrompt) -> list[EngineEntry]:
        """The engines that may be paired on ``prompt`` (weights as in the catalogue, at least 1)."""
        return [self.entries[i].model_copy(update={"weight": max(self.entries[i].weight, 1.0)}) for i in prompt.answered_by()]

    def prompt_audio(self, prompt: ListeningPrompt) -> tuple[np.ndarray, int]:
        """The prompt as mono float32 at 16 kHz."""
        return self._read(prompt.file, PROMPT_RATE)

    def comparison(self, prompt: ListeningPrompt, engine_a: str, engine_b: str) -> Comparison:
        """The stored replies of two engines, as if they had just been compared live."""
        return Comparison(self._side(prompt, engine_a), self._side(prompt, engine_b))

    def _side(self, prompt: ListeningPrompt, engine_id: str) -> SideResult:
        reply = prompt.replies[engine_id]
        result = SideResult(engine_id, reply["status"], reply.get("message", ""), sample_rate=int(reply["sample_rate"]))
        result.user_text, result.reply_text, result.timeline = reply.get("user_text", ""), reply.get("reply_text", ""), reply.get("timeline", {})
        if reply.get("file"):
            try:
                result.audio, result.sample_rate = self._read(reply["file"], None)
            except AudioError as exc:
                result.status, result.message = "failed", f"stored reply unreadable: {exc}"
        return result

    def _read(self, file: str, rate: int | None) -> tuple[np.ndarray, int]:
        path = self.folder / "audio" / Path(file).name
        return read_audio(str(path), rate)
