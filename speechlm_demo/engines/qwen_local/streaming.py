"""``generate`` in a thread with its text streamed out (``TextIteratorStreamer``) and a cancel switch."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch
from transformers import StoppingCriteria, StoppingCriteriaList, TextIteratorStreamer

from ..base import EngineError
from ..read_aside import CANCEL_POLL_S


class StreamedGeneration:
    """``run(streamer, stopping_criteria)`` (a ``generate`` call) in a thread; its text is iterated here.

    ``cancel`` stops generation at the next token; ``lock`` keeps one generation at a time on the model
    (a dropped speculative reply stops before the next one starts).
    """

    def __init__(
        self,
        tokenizer: Any,
        run: Callable[[Any, Any], Any],
        cancel: threading.Event,
        lock: threading.Lock,
        *,
        seed: int | None = None,
        name: str = "qwen-generate",
    ) -> None:
        self.streamer = TextIteratorStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True)
        self._stop = StoppingCriteriaList([_Cancelled(cancel)])
        self._run = run
        self._cancel = cancel
        self._lock = lock
        self._seed = seed
        self._result: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def _work(self) -> None:
        try:
            if self._wait_for_the_model():
                try:
                    with torch.inference_mode():
                        if self._seed is not None:
                            torch.manual_seed(int(self._seed))  # under the lock: no other turn draws from the generator
                        if not self._cancel.is_set():
                            self._result = self._run(self.streamer, self._stop)
                finally:
                    self._lock.release()
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer in result()
            self._error = exc
        finally:
            self.streamer.end()  # wakes the consumer even when generate never started or failed

    def _wait_for_the_model(self) -> bool:
        """Take the lock; False (not taken) once ``cancel`` is set while another generation holds it."""
        while not self._lock.acquire(timeout=CANCEL_POLL_S):
            if self._cancel.is_set():
                return False
        return True

    def text(self) -> Iterator[str]:
        """Decoded text pieces as the model writes them (ends when generation ends, fails or is cancelled)."""
        for piece in self.streamer:
            if piece:
                yield piece

    def result(self) -> Any:
        """Wait for ``generate`` to return; re-raise its error, GPU out-of-memory as an EngineError."""
        self._thread.join()
        if isinstance(self._error, torch.OutOfMemoryError):
            raise EngineError(f"the GPU ran out of memory during this turn ({self._error})") from self._error
        if self._error is not None:
            raise self._error
        return self._result


class _Cancelled(StoppingCriteria):
    """A stopping criterion that ends every sequence once ``cancel`` is set."""

    def __init__(self, cancel: threading.Event) -> None:
        self.cancel = cancel

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        return torch.full((input_ids.shape[0],), self.cancel.is_set(), dtype=torch.bool, device=input_ids.device)
