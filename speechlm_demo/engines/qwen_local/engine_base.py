"""What both in-process Qwen engines share: loading, one generation at a time, sampling, warm-up input."""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from ...turntaking.half_duplex import HalfDuplexEngine
from ..base import Progress, SessionOptions
from .prompt import INPUT_RATE, end_token_ids
from .settings import QwenLocalSettings

if TYPE_CHECKING:
    from ...catalog import EngineEntry
    from .loading import LoadedModel
    from .streaming import StreamedGeneration


class LocalQwenEngine(HalfDuplexEngine):
    """A transformers Qwen model in process; subclasses name the model class and write ``respond``."""

    Settings: ClassVar[type[QwenLocalSettings]] = QwenLocalSettings
    settings: QwenLocalSettings
    loaded_model: LoadedModel
    stream_name: ClassVar[str] = "qwen-generate"

    def __init__(self, entry: EngineEntry, device: str = "cpu") -> None:
        super().__init__(entry, device)
        self._busy = threading.Lock()

    def _load_model(
        self, progress: Progress, model_class_name: str, model_types: tuple[str, ...], extra_files: tuple[str, ...] = ()
    ) -> None:
        from .loading import load_model  # torch and transformers load with the engine, not with this module

        progress(0.05, f"loading {self.settings.model}")
        self.loaded_model = load_model(model_class_name, self.settings, self.device, model_types, extra_files)

    def sampling(self, options: SessionOptions, prefix: str = "") -> dict[str, Any]:
        """``generate`` keywords for the session's temperature (``prefix`` e.g. ``"thinker_"``) and end tokens."""
        settings = self.settings_for(options)
        temperature = settings.temperature if options.temperature is None else options.temperature
        sampling: dict[str, Any] = {f"{prefix}do_sample": temperature > 0}
        if temperature > 0:
            sampling.update({f"{prefix}temperature": temperature, f"{prefix}top_p": settings.top_p})
        eos = end_token_ids(self.loaded_model.tokenizer)
        if eos:
            sampling[f"{prefix}eos_token_id"] = eos
        return sampling

    def _stream(self, generate: Any, cancel: threading.Event, seed: int | None = None) -> StreamedGeneration:
        """Run ``generate(streamer, stopping_criteria)`` in a thread (one at a time on this model)."""
        from .streaming import StreamedGeneration

        return StreamedGeneration(self.loaded_model.tokenizer, generate, cancel, self._busy, seed=seed, name=self.stream_name)

    def close(self) -> None:
        """Drop the model (frees GPU memory once nothing else holds it)."""
        self.__dict__.pop("loaded_model", None)
        self.loaded = False


def warm_up_noise() -> np.ndarray:
    """Half a second of quiet noise at the models' input rate: the warm-up generation's turn."""
    return np.random.default_rng(0).normal(0.0, 0.01, INPUT_RATE // 2).astype(np.float32)
