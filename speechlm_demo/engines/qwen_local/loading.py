"""Loading a Qwen audio model with transformers: hub id or local directory, checked first, clear errors."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers

from ..base import EngineError
from .settings import QwenLocalSettings

log = logging.getLogger(__name__)

FEATURE_CONFIGS = ("preprocessor_config.json", "processor_config.json")  # the Whisper feature extractor's settings
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.safetensors.index.json", "*.bin.index.json")


@dataclass
class LoadedModel:
    """What a turn needs: the model, its tokenizer and its (Whisper) feature extractor."""

    model: Any
    tokenizer: Any
    feature_extractor: Any
    device: Any


def torch_device(name: str) -> torch.device:
    """Catalogue device names to torch: ROCm builds of torch call their GPUs ``cuda``."""
    kind, _, index = name.partition(":")
    if kind == "rocm":
        return torch.device(f"cuda:{index or 0}")
    return torch.device(name)


def looks_local(model: str) -> bool:
    """A path rather than a hub id: it exists, or it starts like a path (``/``, ``.``, ``~``)."""
    return Path(model).expanduser().exists() or model.startswith(("/", ".", "~"))


def check_local_dir(model: str, model_types: tuple[str, ...], extra_files: tuple[str, ...] = ()) -> Path:
    """The directory of a local model, after checking it holds what loading needs (else an EngineError)."""
    path = Path(model).expanduser()
    if not path.is_dir():
        raise EngineError(f"model directory {path} does not exist")
    config = path / "config.json"
    if not config.is_file():
        raise EngineError(f"{path} is not a model directory: config.json is missing")
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError) as exc:
        raise EngineError(f"{config} is not readable JSON: {exc}") from None
    if model_type not in model_types:
        raise EngineError(f"{path} holds a {model_type!r} model, this engine loads {' or '.join(model_types)}")
    if not any(any(path.glob(pattern)) for pattern in WEIGHT_PATTERNS):
        raise EngineError(f"{path} has no weights (*.safetensors or *.bin)")
    missing = [name for name in ("tokenizer_config.json", *extra_files) if not (path / name).is_file()]
    if not any((path / name).is_file() for name in FEATURE_CONFIGS):
        missing.append(" or ".join(FEATURE_CONFIGS))
    if missing:
        raise EngineError(f"{path} lacks {', '.join(missing)} (copy the whole model repository)")
    return path


def load_model(
    model_class_name: str,
    settings: QwenLocalSettings,
    device_name: str,
    model_types: tuple[str, ...],
    extra_files: tuple[str, ...] = (),
) -> LoadedModel:
    """Tokenizer, feature extractor and model (in ``settings.dtype``, on the device, in eval mode)."""
    source = settings.model
    if looks_local(source):
        source = str(check_local_dir(source, model_types, extra_files))
    hub = {"revision": settings.revision, "local_files_only": settings.local_files_only}
    device = torch_device(device_name)
    model_class = getattr(transformers, model_class_name)
    options: dict[str, Any] = {"dtype": getattr(torch, settings.dtype)}
    if settings.attn_implementation:
        options["attn_implementation"] = settings.attn_implementation
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(source, **hub)
        feature_extractor = transformers.WhisperFeatureExtractor.from_pretrained(source, **hub)
        model = model_class.from_pretrained(source, **hub, **options)
        model.to(device).eval()
    except torch.OutOfMemoryError as exc:
        raise EngineError(f"not enough GPU memory for {settings.model} on {device_name} ({exc})") from None
    except Exception as exc:  # hub, file, format and safetensors errors alike: one clear message
        raise EngineError(f"could not load {settings.model}: {exc}") from exc
    log.info("%s loaded from %s on %s (%s)", model_class_name, source, device, settings.dtype)
    return LoadedModel(model, tokenizer, feature_extractor, device)
