"""An English vocabulary for a CTranslate2 Whisper model: a smaller output layer, a faster decoder.

Greedy decoding on a CPU is bound by memory traffic: every token reads the decoder's weights and the
whole output layer, one row per vocabulary entry. Whisper's multilingual vocabulary has 51 865
entries; 11 508 of them spell text with non-ASCII bytes (other scripts, accents). English does not
need them, and the 256 single-byte tokens stay, so any text can still be spelled. Dropping them makes
each decoding step of Whisper base cheaper, with the same words on English speech. Special tokens (languages, tasks, timestamps) all stay, in their order.

:func:`english_model_dir` writes the smaller model once into the cache, with ``token_ids.json``: the
original id of every kept token. Prompts are mapped in and results out with :class:`TokenMap`; the
tokenizer keeps the original ids.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import struct
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..base import EngineError
from .weights import cache_dir

log = logging.getLogger(__name__)

TOKEN_IDS_FILE = "token_ids.json"
MODEL_FILE = "model.bin"
VOCABULARY_FILES = ("vocabulary.json", "vocabulary.txt")
CONFIG_IDS = ("suppress_ids", "suppress_ids_begin", "lang_ids")
FIRST_SPECIAL = "<|endoftext|>"
MULTILINGUAL_SIZE = 51_865


class TokenMap:
    """Ids of a pruned model (positions in ``kept``) and the original ids they stand for."""

    def __init__(self, kept: Sequence[int]) -> None:
        self.kept = [int(i) for i in kept]
        self._positions = {original: new for new, original in enumerate(self.kept)}

    @property
    def multilingual(self) -> bool:
        """Whether the original vocabulary was the multilingual one (special tokens are kept to the end)."""
        return self.kept[-1] + 1 >= MULTILINGUAL_SIZE

    def to_model(self, ids: Iterable[int]) -> list[int]:
        """Original ids -> the pruned model's ids (every id given must have been kept)."""
        return [self._positions[i] for i in ids]

    def from_model(self, ids: Iterable[int]) -> list[int]:
        """The pruned model's ids -> original ids."""
        return [self.kept[i] for i in ids]

    @classmethod
    def load(cls, directory: Path) -> TokenMap | None:
        """The map written next to a pruned model, or None for a model with its full vocabulary."""
        path = directory / TOKEN_IDS_FILE
        return cls(json.loads(path.read_text())) if path.is_file() else None


def english_token_ids(vocabulary: Sequence[str]) -> list[int]:
    """Ids worth keeping: tokens spelled in ASCII, every single-byte token and every special token."""
    if FIRST_SPECIAL not in vocabulary:
        raise EngineError(f"not a Whisper vocabulary: no {FIRST_SPECIAL} token")
    from tokenizers.decoders import ByteLevel  # faster-whisper's own tokenizer library

    first_special = vocabulary.index(FIRST_SPECIAL)
    spell = ByteLevel().decode  # a byte-level BPE token -> its text (a non-ASCII byte never decodes to ASCII)
    return [i for i, token in enumerate(vocabulary) if i >= first_special or len(token) == 1 or spell([token]).isascii()]


def read_vocabulary(directory: Path) -> list[str]:
    """A CTranslate2 model's vocabulary (``vocabulary.json`` or the older ``vocabulary.txt``)."""
    json_file, text_file = (directory / name for name in VOCABULARY_FILES)
    if json_file.is_file():
        try:
            return json.loads(json_file.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise EngineError(f"{json_file} is not valid JSON ({exc})") from exc
    if text_file.is_file():
        return text_file.read_text(encoding="utf-8").split("\n")[:-1]
    raise EngineError(f"{directory} has no vocabulary.json or vocabulary.txt: not a CTranslate2 model directory")


def english_model_dir(source: Path) -> Path:
    """The English-vocabulary copy of the CTranslate2 Whisper model in ``source``, made once in the cache."""
    model = source / MODEL_FILE
    if not model.is_file():
        raise EngineError(f"{source} has no {MODEL_FILE}: not a CTranslate2 model directory")
    stat = model.stat()
    key = hashlib.sha1(f"{source.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = cache_dir() / "whisper-english" / f"{source.name}-{key}"
    if (target / TOKEN_IDS_FILE).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    log.info("writing an English-vocabulary copy of %s into %s (once)", source, target)
    work = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        prune_vocabulary(source, work)
        os.chmod(work, 0o755)
        os.replace(work, target)
    except OSError:
        if not (target / TOKEN_IDS_FILE).is_file():
            raise
        log.info("another process wrote %s first", target)  # a concurrent build won the rename
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def prune_vocabulary(source: Path, target: Path, kept: Sequence[int] | None = None) -> None:
    """Write into ``target`` the model of ``source`` with only the tokens ``kept`` (original ids, ascending;
    by default :func:`english_token_ids`)."""
    vocabulary = read_vocabulary(source)
    kept = english_token_ids(vocabulary) if kept is None else kept
    size = len(vocabulary)
    with (source / MODEL_FILE).open("rb") as original, (target / MODEL_FILE).open("wb") as pruned:
        try:
            _copy_model(original, pruned, size, np.asarray(kept, dtype=np.int64))
        except (struct.error, ValueError) as exc:  # a short read or a shape that does not fit
            raise EngineError(f"{source / MODEL_FILE} is truncated or damaged ({exc}); get or convert it again") from exc
    (target / "vocabulary.json").write_text(json.dumps([vocabulary[i] for i in kept]), encoding="utf-8")
    positions = {original: new for new, original in enumerate(kept)}
    config = json.loads((source / "config.json").read_text()) if (source / "config.json").is_file() else {}
    for key in CONFIG_IDS:
        if key in config:
            config[key] = [positions[i] for i in config[key] if i in positions]
    (target / "config.json").write_text(json.dumps(config, indent=1))
    for path in source.iterdir():
        if path.is_file() and path.name not in {MODEL_FILE, "config.json", TOKEN_IDS_FILE, *VOCABULARY_FILES}:
            shutil.copy2(path, target / path.name)
    (target / TOKEN_IDS_FILE).write_text(json.dumps([int(i) for i in kept]))


def _copy_model(original: BinaryIO, pruned: BinaryIO, size: int, kept: np.ndarray) -> None:
    """Copy CTranslate2's ``model.bin`` (binary version 6), keeping rows ``kept`` of every vocabulary-sized
    variable (the embeddings, which the output layer shares, their scales and any output bias)."""
    from ctranslate2.specs.model_spec import CURRENT_BINARY_VERSION

    def take(fmt: str) -> int:
        return struct.unpack(fmt, original.read(struct.calcsize(fmt)))[0]

    def take_string() -> bytes:
        return original.read(take("H"))

    def put(fmt: str, value: int) -> None:
        pruned.write(struct.pack(fmt, value))

    def put_string(raw: bytes) -> None:
        put("H", len(raw))
        pruned.write(raw)

    version = take("I")
    if version != CURRENT_BINARY_VERSION:
        raise EngineError(
            f"model.bin has binary version {version}, this CTranslate2 writes {CURRENT_BINARY_VERSION}: "
            "convert the model again with ct2-transformers-converter"
        )
    put("I", version)
    put_string(take_string())
    put("I", take("I"))  # revision
    count = take("I")
    put("I", count)
    for _ in range(count):
        put_string(take_string())
        shape = [take("I") for _ in range(take("B"))]
        dtype, length = take("B"), take("I")
        data = original.read(length)
        if len(data) != length:
            raise ValueError(f"{len(data)} of {length} bytes left for a variable")
        if shape and shape[0] == size:
            rows = np.frombuffer(data, dtype=np.uint8).reshape(size, -1)
            data = rows[kept].tobytes()
            shape[0] = len(kept)
        put("B", len(shape))
        for dim in shape:
            put("I", dim)
        put("B", dtype)
        put("I", len(data))
        pruned.write(data)
    aliases = take("I")
    put("I", aliases)
    for _ in range(2 * aliases):
        put_string(take_string())
