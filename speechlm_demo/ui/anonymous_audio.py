"""Reply audio for blind rounds as files whose URLs say nothing: a random folder and name per round and side.

Gradio names the files it makes from audio arrays after a hash of their content, so the same reply would
have the same URL for every browser and every round: a voter who saw it revealed once would recognise it
later. Files written here go straight into Gradio's cache folder, which Gradio serves as they are (no
content hash), and are deleted once they are older than a round can live.
"""

from __future__ import annotations

import logging
import secrets
import shutil
import threading
import time
from pathlib import Path

import numpy as np
from gradio.utils import get_upload_folder

from ..audio import encode_wav

log = logging.getLogger(__name__)

SUBFOLDER = "blind-replies"
KEEP_S = 2 * 3600.0
PRUNE_EVERY_S = 60.0

_lock = threading.Lock()
_last_prune = 0.0


def anonymous_wav(samples: np.ndarray, sample_rate: int, root: Path | None = None) -> str:
    """Write mono float samples to ``<Gradio cache>/blind-replies/<random>/<random>.wav``; returns the path."""
    base = (root or Path(get_upload_folder())) / SUBFOLDER
    folder = base / secrets.token_hex(16)
    folder.mkdir(parents=True)
    path = folder / f"{secrets.token_hex(8)}.wav"
    path.write_bytes(encode_wav(samples, sample_rate))
    _prune(base)
    return str(path)


def _prune(base: Path) -> None:
    """Delete the round folders older than :data:`KEEP_S` (at most once a minute)."""
    global _last_prune
    now = time.time()
    with _lock:
        if now - _last_prune < PRUNE_EVERY_S:
            return
        _last_prune = now
    for folder in base.iterdir():
        try:
            if now - folder.stat().st_mtime > KEEP_S:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            log.debug("could not prune %s", folder, exc_info=True)
