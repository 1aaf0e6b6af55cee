"""Moshi in process: Mimi encode -> LMGen.step -> Mimi decode on every 80 ms frame, in a worker thread.

Importing this module is cheap (the catalogue reads :class:`MoshiSettings` through it); torch and the ``moshi``
package are imported when an engine is built. The engine loads once (hub repo or local files, through the ``moshi`` package's loaders), keeps Mimi and one
:class:`~moshi.models.LMGen` in streaming mode and warms them up, so a session only resets their state (on CUDA
the captured graphs are kept). One session computes at a time, like Kyutai's own server. The session is a
:class:`~speechlm_demo.turntaking.full_duplex.FullDuplexSession` (framing to 24 kHz 1920-sample frames, the
drop-oldest backlog, words, per-user-turn timelines); it implements only the per-frame step. Moshi hears the
user all the time, also while it speaks; its audio is emitted continuously and its inner-monologue text as words.
"""

from __future__ import annotations

import gc
import logging
import threading
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np

from ...turntaking.full_duplex import FullDuplexEngine, FullDuplexSession
from ..base import Emit, EngineError, Progress, SessionOptions
from . import FRAME_SIZE, SAMPLE_RATE
from .settings import MoshiSettings

if TYPE_CHECKING:
    from moshi.models import LMGen

    from ...catalog import EngineEntry
    from .models import MoshiModels

log = logging.getLogger(__name__)

TEXT_PADDING_IDS = (0, 3)
BUSY_WAIT_S = 3.0


@dataclass(frozen=True)
class Sampling:
    """LMGen sampling settings: audio and text temperatures and top-k."""

    temp: float = 0.8
    temp_text: float = 0.7
    top_k: int = 250
    top_k_text: int = 25


class MoshiEngine(FullDuplexEngine):
    """Moshi (Moshiko / Moshika, bf16 or int8) in this process."""

    Settings = MoshiSettings
    settings: MoshiSettings
    stream_rate = SAMPLE_RATE
    frame_size = FRAME_SIZE

    def __init__(self, entry: EngineEntry, device: str = "cpu") -> None:
        from .models import torch_device  # torch is imported when an engine is built, not with this module

        super().__init__(entry, device)
        self.torch_device = torch_device(device)
        self.busy = threading.Lock()
        self.models: MoshiModels | None = None
        self._gen: LMGen | None = None
        self._gen_sampling: Sampling | None = None
        self._gen_stack = ExitStack()
        self._stacks = ExitStack()

    def _load(self, progress: Progress) -> None:
        import torch

        from .models import inference, load_checkpoint, parse_dtype

        dtype = parse_dtype(self.settings.dtype)
        progress(0.05, f"loading Moshi from {self.settings.moshi_weights or self.settings.hf_repo or 'the hub'}")
        try:
            self.models = load_checkpoint(self.settings.model_dump(), self.torch_device, dtype)
            progress(0.85, "warming up Moshi")
            self._stacks.enter_context(self.models.mimi.streaming(1))
            with inference(self.torch_device):
                self.prepare(self.sampling_for(SessionOptions()), seed=None)
        except torch.OutOfMemoryError as exc:
            self.close()
            raise EngineError(f"not enough GPU memory for Moshi on {self.device} ({exc})") from exc
        except Exception:
            self.close()  # free what was loaded before the failure
            raise
        progress(1.0, "Moshi ready")

    def sampling_for(self, options: SessionOptions) -> Sampling:
        """Checkpoint defaults < catalogue ``defaults`` < the session's options (temperature, extra)."""
        values = {k: v for k, v in ((self.models.lm_gen_config or {}) if self.models else {}).items()
                  if k in Sampling.__dataclass_fields__}
        settings = self.settings_for(options)
        values.update({k: getattr(settings, k) for k in Sampling.__dataclass_fields__ if getattr(settings, k) is not None})
        if settings.temperature is not None:
            values["temp"] = settings.temperature
        if options.temperature is not None:
            values["temp"] = options.temperature
        return Sampling(**values)

    def prepare(self, sampling: Sampling, seed: int | None) -> LMGen:
        """The streaming generator for ``sampling``, reset (rebuilt and warmed up if the sampling changed)."""
        import torch

        assert self.models is not None, "load() first"
        if self._gen is None or self._gen_sampling != sampling:
            self.discard_generator()
            gen = self.models.generator(**asdict(sampling))
            self._gen_stack = gen.streaming(1)
            self._gen, self._gen_sampling = gen, sampling
            started = time.perf_counter()
            for index in range(self.settings.warmup_frames):
                self.run_frame(gen, np.zeros(FRAME_SIZE, np.float32), skip=index == 0)
            log.info("Moshi generator %s warmed up in %.2f s", sampling, time.perf_counter() - started)
        if seed is not None:
            torch.manual_seed(int(seed))
        self._gen.reset_streaming()
        self.models.mimi.reset_streaming()
        return self._gen

    def run_frame(self, gen: LMGen, frame: np.ndarray, *, skip: bool = False) -> tuple[np.ndarray | None, int | None]:
        """One 80 ms step: agent audio (None while the delays fill) and the text id. Call inside :func:`inference`.

        ``skip`` encodes the first frame of a stream and drops it, as Kyutai's server does (it lies in the past).
        """
        import torch

        assert self.models is not None
        mimi = self.models.mimi
        codes = mimi.encode(torch.from_numpy(frame).to(self.torch_device)[None, None])
        if skip:
            mimi.reset_streaming()
            return None, None
        tokens = gen.step(codes[:, :, :1])
        if tokens is None:
            return None, None
        pcm = mimi.decode(tokens[:, 1:]).float().cpu().numpy()[0, 0]
        return pcm, int(tokens[0, 0, 0])

    def piece(self, text_id: int) -> str:
        """The text piece of an id, with SentencePiece's word marker as a space."""
        tokenizer = self.models.tokenizer if self.models else None
        if tokenizer is None or not 0 <= text_id < tokenizer.vocab_size():
            return ""
        if tokenizer.is_control(text_id) or tokenizer.is_unknown(text_id):  # <s>, </s>, <unk>: not words
            return ""
        return tokenizer.id_to_piece(text_id).replace("\u2581", " ")

    def discard_generator(self) -> None:
        """Leave streaming mode and forget the generator; frees GPU memory after a failure."""
        import torch

        if self._gen is not None:
            self._gen_stack.close()
            self._gen = self._gen_sampling = None
        gc.collect()
        if self.torch_device.type == "cuda":
            torch.cuda.empty_cache()

    def check_ready(self) -> None:
        """A conversation needs the loaded models; sampling and seed come from the session's options."""
        if self.models is None:
            raise EngineError("Moshi is not loaded")

    def close(self) -> None:
        """Release the models and the GPU memory they hold (waits briefly for a running session)."""
        got = self.busy.acquire(timeout=BUSY_WAIT_S)
        try:
            self._stacks.close()
            self.models = None
            self.loaded = False
            self.discard_generator()
        finally:
            if got:
                self.busy.release()


class MoshiSession(FullDuplexSession):
    """One full-duplex conversation with the in-process engine: Mimi encode -> LMGen.step -> Mimi decode."""

    engine: MoshiEngine

    def __init__(self, engine: MoshiEngine, options: SessionOptions, emit: Emit) -> None:
        super().__init__(engine, options, emit)
        self.sampling = engine.sampling_for(options)
        self._held = False
        self._first = True
        self._gen: LMGen | None = None
        self._context = ExitStack()

    def begin(self) -> None:
        """Take the model (one conversation at a time) and reset it for this conversation."""
        engine = self.engine
        if not engine.busy.acquire(timeout=BUSY_WAIT_S):
            raise EngineError("Moshi is busy with another conversation in this process; close it first.")
        self._held = True
        from .models import inference

        self._context.enter_context(inference(engine.torch_device))
        self._gen = engine.prepare(self.sampling, self.options.seed)

    def step(self, frame: np.ndarray) -> None:
        """One 80 ms frame through the model; its audio and text piece go out."""
        assert self._gen is not None
        pcm, text_id = self.engine.run_frame(self._gen, frame, skip=self._first)
        self._first = False
        if pcm is not None:
            self.agent_audio(pcm)
        if text_id is not None:
            self.agent_text("" if text_id in TEXT_PADDING_IDS else self.engine.piece(text_id))

    def end(self) -> None:
        """Leave the inference context and free the model for the next session."""
        self._context.close()
        if self._held:
            self._held = False
            self.engine.busy.release()

    def describe_failure(self, exc: Exception) -> str:
        """Out of memory, a GPU error, or anything else; the generator is discarded to free its memory."""
        if isinstance(exc, EngineError):
            return str(exc)
        self.engine.discard_generator()
        return _describe(exc, self.engine.device)


def _describe(exc: Exception, device: str) -> str:
    import torch

    if isinstance(exc, torch.OutOfMemoryError):
        return f"Moshi ran out of GPU memory on {device}; this conversation was stopped and its memory freed."
    if "CUDA" in str(exc) or "HIP" in str(exc):
        return f"Moshi hit a GPU error on {device} and this conversation was stopped: {exc}"
    return f"Moshi failed and this conversation was stopped: {exc}"


MoshiEngine.session_class = MoshiSession
