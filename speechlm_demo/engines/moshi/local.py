"""Moshi in process: Mimi encode -> LMGen.step -> Mimi decode on every 80 ms frame, in a worker thread.

The engine loads once (hub repo or local files, through the ``moshi`` package's loaders), keeps Mimi and one
:class:`~moshi.models.LMGen` in streaming mode and warms them up, so a session only resets their state (on CUDA
the captured graphs are kept). One session computes at a time, like Kyutai's own server. A session turns any
input into 24 kHz mono 1920-sample frames and queues them in a small drop-oldest queue: a session that falls
behind real time drops (and reports) frames instead of building a backlog. Moshi hears the user all the time,
also while it speaks; its audio is emitted continuously and its inner-monologue text as words.
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
import torch
from moshi.models import LMGen

from ..base import AudioOut, Emit, Engine, EngineError, EngineSession, ErrorEvent, Progress, SessionOptions, TextOut
from . import FRAME_SIZE, SAMPLE_RATE
from .common import DropReporter, FrameQueue, InputFramer, WordAssembler
from .models import MoshiModels, inference, load_checkpoint, parse_dtype, torch_device
from .turn_marks import DuplexTurnTracker

if TYPE_CHECKING:
    from ...catalog import EngineEntry

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


class MoshiEngine(Engine):
    """Moshi (Moshiko / Moshika, bf16 or int8) in this process."""

    def __init__(self, entry: EngineEntry, device: str = "cpu") -> None:
        super().__init__(entry, device)
        self.torch_device = torch_device(device)
        self.busy = threading.Lock()
        self.models: MoshiModels | None = None
        self._gen: LMGen | None = None
        self._gen_sampling: Sampling | None = None
        self._gen_stack = ExitStack()
        self._stacks = ExitStack()

    def _load(self, progress: Progress) -> None:
        dtype = parse_dtype(self.setting("dtype", "bfloat16"))
        progress(0.05, f"loading Moshi from {self.setting('moshi_weights') or self.setting('hf_repo', 'the hub')}")
        try:
            self.models = load_checkpoint(self.entry.defaults, self.torch_device, dtype)
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
        values.update({k: self.setting(k) for k in Sampling.__dataclass_fields__ if self.setting(k) is not None})
        values.update({k: v for k, v in options.extra.items() if k in Sampling.__dataclass_fields__})
        if self.setting("temperature") is not None:
            values["temp"] = self.setting("temperature")
        if options.temperature is not None:
            values["temp"] = options.temperature
        return Sampling(**values)

    def prepare(self, sampling: Sampling, seed: int | None) -> LMGen:
        """The streaming generator for ``sampling``, reset (rebuilt and warmed up if the sampling changed)."""
        assert self.models is not None, "load() first"
        if self._gen is None or self._gen_sampling != sampling:
            self.discard_generator()
            gen = self.models.generator(**asdict(sampling))
            self._gen_stack = gen.streaming(1)
            self._gen, self._gen_sampling = gen, sampling
            started = time.perf_counter()
            for index in range(int(self.setting("warmup_frames", 4))):
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
        if self._gen is not None:
            self._gen_stack.close()
            self._gen = self._gen_sampling = None
        gc.collect()
        if self.torch_device.type == "cuda":
            torch.cuda.empty_cache()

    def open_session(self, options: SessionOptions, emit: Emit) -> MoshiSession:
        """A full-duplex conversation; sampling and seed come from ``options``."""
        if self.models is None:
            raise EngineError("Moshi is not loaded")
        return MoshiSession(self, options, emit)

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


class MoshiSession(EngineSession):
    """One full-duplex conversation with the in-process engine."""

    engine: MoshiEngine

    def __init__(self, engine: MoshiEngine, options: SessionOptions, emit: Emit) -> None:
        super().__init__(engine, options, emit)
        self.sampling = engine.sampling_for(options)
        self.framer = InputFramer(self.input_sample_rate)
        self.frames: FrameQueue[np.ndarray] = FrameQueue(int(options.extra.get("max_backlog_frames", engine.setting("max_backlog_frames", 3))))
        self.drops = DropReporter("Moshi")
        self.words = WordAssembler()
        self.tracker = DuplexTurnTracker.for_engine(engine, emit)
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._work, name=f"moshi-{engine.id}", daemon=True)
        self._thread.start()

    def _push(self, pcm: np.ndarray) -> None:
        """Frame clean input audio (see :meth:`EngineSession.push_audio`) for the model."""
        if self._stop.is_set():
            return
        audio, frames = self.framer.push(pcm)
        self.tracker.user_audio(audio)
        for frame in frames:
            self._enqueue(frame)

    def flush(self, timeout: float = 10.0) -> None:
        """End of input: process what is queued, then close the turns in progress."""
        last = self.framer.flush()
        if last is not None and not self._stop.is_set():
            self._enqueue(last)
        self.frames.join(timeout)
        self._say(self.words.flush())
        self.tracker.finish()

    def close(self) -> None:
        """Stop the worker; the engine is free for the next session."""
        self._stop.set()
        self.frames.clear()
        self._thread.join(timeout=10.0)

    def _enqueue(self, frame: np.ndarray) -> None:
        if self.frames.put(frame):
            self.tracker.dropped()
            message = self.drops.dropped()
            if message:
                log.warning(message)
                self.emit(ErrorEvent(message))

    def _work(self) -> None:
        engine = self.engine
        if not engine.busy.acquire(timeout=BUSY_WAIT_S):
            self._fail("Moshi is busy with another conversation in this process; close it first.")
            return
        try:
            with inference(engine.torch_device):
                gen = engine.prepare(self.sampling, self.options.seed)
                self.ready.set()
                first = True
                while not self._stop.is_set():
                    frame = self.frames.get(timeout=0.1)
                    if frame is None:
                        continue
                    try:
                        started = time.perf_counter()
                        pcm, text_id = engine.run_frame(gen, frame, skip=first)
                        self.tracker.step(time.perf_counter() - started)
                        first = False
                        self._publish(pcm, text_id)
                    finally:
                        self.frames.task_done()
        except Exception as exc:  # any failure ends this session with a message, not the app
            log.exception("Moshi session failed")
            engine.discard_generator()
            self._fail(_describe(exc, engine.device))
        finally:
            engine.busy.release()

    def _publish(self, pcm: np.ndarray | None, text_id: int | None) -> None:
        if pcm is not None:
            self.tracker.agent_audio(pcm)
            self.emit(AudioOut(pcm, SAMPLE_RATE))
        if text_id is not None:
            piece = "" if text_id in TEXT_PADDING_IDS else self.engine.piece(text_id)
            self._say(self.words.piece(piece) if piece else self.words.idle())

    def _say(self, word: str | None) -> None:
        if word:
            self.tracker.agent_text(word)
            self.emit(TextOut(word, role="agent"))

    def _fail(self, message: str) -> None:
        self._stop.set()
        self.frames.clear()
        self.ready.set()
        self.emit(ErrorEvent(message, fatal=True))
        self.tracker.finish()


def _describe(exc: Exception, device: str) -> str:
    if isinstance(exc, torch.OutOfMemoryError):
        return f"Moshi ran out of GPU memory on {device}; this conversation was stopped and its memory freed."
    if "CUDA" in str(exc) or "HIP" in str(exc):
        return f"Moshi hit a GPU error on {device} and this conversation was stopped: {exc}"
    return f"Moshi failed and this conversation was stopped: {exc}"
