"""What a blind round is drawn from: the candidate engines, a weighted pair, and the fingerprints stored with
a vote (the exact input, the engines' configurations)."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from ..catalog import EngineEntry
from ..compare import Comparison

if TYPE_CHECKING:
    from ..engines.registry import EngineRegistry


class NotEnoughEngines(RuntimeError):
    """Fewer than two engines with a positive weight are available."""


def audio_sha256(audio: np.ndarray, sample_rate: int) -> str:
    """Hash of the exact input: the rate and the float32 samples."""
    digest = hashlib.sha256(int(sample_rate).to_bytes(4, "little"))
    digest.update(np.ascontiguousarray(audio, dtype="<f4").tobytes())
    return digest.hexdigest()


def engine_version(entry: EngineEntry) -> str:
    """The engine's catalogue configuration fingerprint (models, class, settings)."""
    return "cfg-" + hashlib.sha256(entry.model_dump_json(by_alias=True).encode()).hexdigest()[:12]


def blind_candidates(registry: EngineRegistry) -> list[EngineEntry]:
    """Engines that can enter blind rounds: offered here, weight > 0, not failed to load."""
    ids = [i for i in registry.offered_ids() if registry.state(i).status != "failed"]
    return [registry.availability[i].entry for i in ids if registry.availability[i].entry.weight > 0]


def playable_sides(replies: Comparison) -> set[str]:
    """The sides with a reply to listen to."""
    return {side for side, result in replies.sides.items() if result.ok and len(result.audio)}


def _draw(pool: Sequence[EngineEntry], rng: random.Random) -> EngineEntry:
    """One entry drawn by weight; the weights are scaled to at most 1 so that their sum stays finite."""
    top = max(e.weight for e in pool)
    return rng.choices(pool, weights=[e.weight / top for e in pool])[0]


def pick_pair(entries: Sequence[EngineEntry], rng: random.Random) -> tuple[EngineEntry, EngineEntry]:
    """Two different engines drawn by weight, in random side order."""
    pool = [e for e in entries if e.weight > 0]
    if len({e.id for e in pool}) < 2:
        raise NotEnoughEngines("blind A/B needs at least two engines with a positive weight")
    first = _draw(pool, rng)
    second = _draw([e for e in pool if e.id != first.id], rng)
    return (first, second) if rng.random() < 0.5 else (second, first)
