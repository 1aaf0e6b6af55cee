"""Units -> 24 kHz audio for LLaMA-Omni2: the CosyVoice2 flow + HiFT decoder (``ICTNLP/cosy2_decoder``).

The decoder code is LLaMA-Omni2's own ``llama_omni2/serve/flow_inference.py`` (``SpeechDecoder``, with
its vendored ``cosyvoice`` and ``third_party/Matcha-TTS``). It is not on PyPI in a form that runs here:
``cosyvoice`` 0.0.8 is an unrelated wrapper of CosyVoice v1; ``cosyvoice-minicpmo`` 0.1.0 ships upstream
CosyVoice whose flow API (``streaming``/``finalize``) differs from LLaMA-Omni2's fork (``flow_cache``);
``matcha-tts`` is only the Matcha part. All need torch + torchaudio + CUDA. So on a GPU host: check out
LLaMA-Omni2, ``pip install -e .`` it in a venv with torch, download ``ICTNLP/cosy2_decoder`` and set
``unit_decoder_dir``; this adapter then calls ``SpeechDecoder`` exactly as LLaMA-Omni2's web server does.
"""

from __future__ import annotations

import importlib
from typing import Any, Protocol

import numpy as np

from ..base import EngineError

SAMPLE_RATE = 24_000


class UnitVocoder(Protocol):
    """Turns a growing list of unit ids into audio, chunk by chunk."""

    codes: int  # the unit ids it takes are 0 .. codes - 1

    def start(self) -> Any:
        """Per-reply state."""

    def feed(self, units: list[int], state: Any, finalize: bool) -> tuple[np.ndarray, Any]:
        """Audio (float32, :data:`SAMPLE_RATE`) for the new ``units``; may be empty until enough arrived."""


class CosyVoice2Vocoder:
    """LLaMA-Omni2's ``SpeechDecoder`` (needs its checkout, torch and the cosy2_decoder weights)."""

    def __init__(self, model_dir: str, prompt_wav: str, device: str = "cuda", hop_len: int = 10) -> None:
        try:
            flow_inference = importlib.import_module("llama_omni2.serve.flow_inference")
            file_utils = importlib.import_module("cosyvoice.utils.file_utils")
            self.torch = importlib.import_module("torch")
        except ImportError as exc:
            raise ImportError(f"LLaMA-Omni2's unit decoder needs its checkout and torch ({exc}); see vocoder.py") from exc
        self.device = device
        self.decoder = flow_inference.SpeechDecoder(model_dir=model_dir, device=device, hop_len=hop_len)
        self.codes = int(self.decoder.flow.vocab_size)  # the flow's nn.Embedding(vocab_size, ...)
        self.prompt = file_utils.load_wav(prompt_wav, 16000)

    def start(self) -> Any:
        """A decoder session voiced by the prompt WAV's speaker."""
        return self.decoder.init_prompt(self.prompt)

    def feed(self, units: list[int], state: Any, finalize: bool) -> tuple[np.ndarray, Any]:
        """``process_unit_chunk`` on the new units."""
        chunk = self.torch.LongTensor(units).to(self.device)
        speech, state = self.decoder.process_unit_chunk(chunk, state, finalize=finalize)
        audio = np.zeros(0, np.float32) if speech is None else speech.float().numpy().reshape(-1)
        return audio.astype(np.float32, copy=False), state


def load_vocoder(spec: str, model_dir: str, prompt_wav: str, device: str) -> UnitVocoder:
    """``cosyvoice2`` (LLaMA-Omni2's decoder) or ``package.module:factory`` (called with the same arguments)."""
    if spec == "cosyvoice2":
        return CosyVoice2Vocoder(model_dir, prompt_wav, device)
    module, _, name = spec.partition(":")
    factory = getattr(importlib.import_module(module), name)
    vocoder = factory(model_dir=model_dir, prompt_wav=prompt_wav, device=device)
    codes = getattr(vocoder, "codes", None)
    if not isinstance(codes, int) or isinstance(codes, bool) or codes <= 0:
        raise EngineError(f"the unit decoder {spec} says no `codes` (how many unit ids it takes, an integer > 0): {codes!r}")
    return vocoder
