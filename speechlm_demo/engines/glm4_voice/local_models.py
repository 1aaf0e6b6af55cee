"""The three models GLM-4-Voice's client runs itself: the GLM tokenizer (text ids, the audio offset), the
speech tokenizer (``glm-4-voice-tokenizer``: Whisper encoder + VQ, 16 kHz in, 12.5 tokens/s) and the speech
decoder (``glm-4-voice-decoder``: flow + HiFT, 22.05 kHz out).

The real ones need torch, transformers and the GLM-4-Voice repository (``speech_tokenizer/`` and
``flow_inference.py``, which are not on PyPI) on ``sys.path`` (``repo_path``), with CUDA for the
tokenizer and decoder as upstream hard-codes ``.cuda()``. They are built exactly as ``web_demo.py`` builds
them; the app's CPU environment has none of them, so they are not run by the tests here (the client is
tested with stand-ins of the same shape).
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

DECODER_RATE = 22_050
BLOCK_SIZES = (25, 50, 100, 150, 200)
SPEECH_TOKEN = re.compile(r"<\|audio_\d+\|>")


class GlmTokenizer(Protocol):
    """Ids <-> text for the GLM model."""

    audio_offset: int  # id of ``<|audio_0|>``
    audio_tokens: int  # how many speech tokens (``<|audio_N|>``) the vocabulary has from there on
    end_id: int

    def decode(self, ids: list[int]) -> str:
        """Text of ``ids`` (special tokens spelled out)."""


class SpeechTokenizer(Protocol):
    """16 kHz speech -> discrete speech tokens."""

    def tokens(self, audio: np.ndarray) -> list[int]:
        """The tokens of ``audio`` (mono float32, 16 kHz)."""


class SpeechDecoder(Protocol):
    """Speech tokens -> 22.05 kHz audio, block by block."""

    def start(self) -> Any:
        """Per-reply state."""

    def feed(self, tokens: list[int], state: Any, finalize: bool) -> tuple[np.ndarray, Any]:
        """Audio for one block of tokens."""


@dataclass
class GlmModels:
    """What the client needs locally; ``decoder`` None means text-only replies."""

    tokenizer: GlmTokenizer
    speech_tokenizer: SpeechTokenizer
    decoder: SpeechDecoder | None


def _repo_on_path(repo_path: str) -> None:
    if repo_path and repo_path not in sys.path:
        sys.path.insert(0, repo_path)
        sys.path.insert(0, os.path.join(repo_path, "third_party", "Matcha-TTS"))


class HFGlmTokenizer:
    """``AutoTokenizer.from_pretrained(model_path, trust_remote_code=True)`` as in ``web_demo.py``."""

    def __init__(self, model_path: str) -> None:
        transformers = importlib.import_module("transformers")
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(model_path, trust_remote_code=True)
        self.audio_offset = self.tokenizer.convert_tokens_to_ids("<|audio_0|>")
        self.audio_tokens = sum(1 for token in self.tokenizer.get_vocab() if SPEECH_TOKEN.fullmatch(_text(token)))
        self.end_id = self.tokenizer.convert_tokens_to_ids("<|user|>")

    def decode(self, ids: list[int]) -> str:
        """``decode(ids, spaces_between_special_tokens=False)``."""
        return self.tokenizer.decode(ids, spaces_between_special_tokens=False)


def _text(token: str | bytes) -> str:
    """A vocabulary key as text: GLM-4's tiktoken tokenizer keys its base vocabulary by bytes."""
    return token.decode("utf-8", "replace") if isinstance(token, bytes) else token


class WhisperVQTokenizer:
    """``WhisperVQEncoder`` + ``extract_speech_token`` from the GLM-4-Voice repository."""

    def __init__(self, tokenizer_path: str, repo_path: str, device: str) -> None:
        _repo_on_path(repo_path)
        self.torch = importlib.import_module("torch")
        modeling = importlib.import_module("speech_tokenizer.modeling_whisper")
        self.utils = importlib.import_module("speech_tokenizer.utils")
        transformers = importlib.import_module("transformers")
        self.model = modeling.WhisperVQEncoder.from_pretrained(tokenizer_path).eval().to(device)
        self.features = transformers.WhisperFeatureExtractor.from_pretrained(tokenizer_path)

    def tokens(self, audio: np.ndarray) -> list[int]:
        """``extract_speech_token(model, feature_extractor, [(audio[1, N], 16000)])[0]``."""
        tensor = self.torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)).unsqueeze(0)
        return list(self.utils.extract_speech_token(self.model, self.features, [(tensor, 16000)])[0])


class FlowHiftDecoder:
    """``flow_inference.AudioDecoder`` driven block by block as ``web_demo.py`` drives it."""

    def __init__(self, decoder_path: str, repo_path: str, device: str) -> None:
        _repo_on_path(repo_path)
        self.torch = importlib.import_module("torch")
        flow_inference = importlib.import_module("flow_inference")
        self.device = device
        self.decoder = flow_inference.AudioDecoder(
            config_path=os.path.join(decoder_path, "config.yaml"),
            flow_ckpt_path=os.path.join(decoder_path, "flow.pt"),
            hift_ckpt_path=os.path.join(decoder_path, "hift.pt"),
            device=device,
        )

    def start(self) -> Any:
        """Empty prompt token/feature caches and a fresh uuid."""
        torch = self.torch
        return {"uuid": str(uuid.uuid4()), "prompt_token": torch.zeros(1, 0, dtype=torch.int64), "mels": []}

    def feed(self, tokens: list[int], state: Any, finalize: bool) -> tuple[np.ndarray, Any]:
        """``token2wav`` on one block, with the previous blocks as the flow's prompt."""
        torch = self.torch
        block = torch.tensor(tokens, device=self.device).unsqueeze(0)
        prompt_feat = torch.cat(state["mels"], dim=-1).transpose(1, 2) if state["mels"] else torch.zeros(1, 0, 80)
        speech, mel = self.decoder.token2wav(
            block, uuid=state["uuid"], prompt_token=state["prompt_token"].to(self.device), prompt_feat=prompt_feat.to(self.device), finalize=finalize
        )
        state["mels"].append(mel)
        state["prompt_token"] = torch.cat((state["prompt_token"].to(self.device), block), dim=-1)
        return speech.float().cpu().numpy().reshape(-1).astype(np.float32), state


def load_models(model_path: str, tokenizer_path: str, decoder_path: str, repo_path: str, device: str) -> GlmModels:
    """The real models (see the module docstring for what they need)."""
    try:
        return GlmModels(
            HFGlmTokenizer(model_path),
            WhisperVQTokenizer(tokenizer_path, repo_path, device),
            FlowHiftDecoder(decoder_path, repo_path, device) if decoder_path else None,
        )
    except ImportError as exc:
        raise ImportError(
            f"GLM-4-Voice's client-side models need torch, transformers and the GLM-4-Voice repository on a CUDA host ({exc}); "
            "see speechlm_demo/engines/glm4_voice/local_models.py"
        ) from exc
