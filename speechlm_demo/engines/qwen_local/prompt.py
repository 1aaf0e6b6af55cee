"""The ChatML prompt of a Qwen audio turn, with its audio placeholders and Whisper features.

Qwen2-Audio and Qwen2.5-Omni read speech the same way: Whisper log-mel features (16 kHz, 128 bins,
padded to 30 s) and, in the prompt, ``<|audio_bos|>`` + one ``<|AUDIO|>`` per encoder output frame +
``<|audio_eos|>``. The count follows the encoder's two stride-2 stages (transformers 5.23,
``processing_qwen2_5_omni._get_feat_extract_output_lengths`` and ``Qwen2AudioProcessor._process_audio``).
Earlier turns keep their audio, so the model hears the conversation, not a transcript of it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..base import EngineError

if TYPE_CHECKING:
    from .loading import LoadedModel

INPUT_RATE = 16_000
AUDIO_TOKEN = "<|AUDIO|>"
AUDIO_BOS = "<|audio_bos|>"
AUDIO_EOS = "<|audio_eos|>"
END_TOKENS = ("<|im_end|>", "<|endoftext|>")
# Qwen2.5-Omni / Qwen3-Omni only speak with this exact system prompt (their model cards say so); in process
# and over vLLM-Omni alike.
QWEN_SYSTEM_PROMPT = (
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of perceiving "
    "auditory and visual inputs, as well as generating text and speech."
)


def audio_token_count(feature_frames: int) -> int:
    """``<|AUDIO|>`` placeholders for ``feature_frames`` mel frames (conv stride 2, then pooling stride 2)."""
    after_conv = (feature_frames - 1) // 2 + 1
    return (after_conv - 2) // 2 + 1


def build_inputs(
    loaded: LoadedModel,
    system_prompt: str,
    history: list[dict[str, Any]],
    audio: np.ndarray,
    audio_token_id: int,
    audio_label: Callable[[int], str] = lambda index: "",
) -> dict[str, Any]:
    """Model inputs for ``audio`` after ``history`` (``{"role": "user", "audio"}`` / ``{"role": "assistant",
    "content"}``), on the model's device. ``audio_label(n)`` precedes the n-th audio (Qwen2-Audio: "Audio n: ")."""
    audios = [message["audio"] for message in history if message["role"] == "user"] + [audio]
    features = loaded.feature_extractor(
        audios, sampling_rate=INPUT_RATE, return_attention_mask=True, padding="max_length", return_tensors="pt"
    )
    counts = iter([audio_token_count(int(n)) for n in features["attention_mask"].sum(-1).tolist()])
    number = iter(range(1, len(audios) + 1))

    def user(count: int) -> str:
        placeholder = f"{audio_label(next(number))}{AUDIO_BOS}{AUDIO_TOKEN * count}{AUDIO_EOS}"
        return f"<|im_start|>user\n{placeholder}<|im_end|>\n"

    parts = [f"<|im_start|>system\n{system_prompt}<|im_end|>\n"]
    for message in history:
        if message["role"] == "user":
            parts.append(user(next(counts)))
        else:
            parts.append(f"<|im_start|>assistant\n{message['content']}<|im_end|>\n")
    parts.append(user(next(counts)) + "<|im_start|>assistant\n")
    text = loaded.tokenizer("".join(parts), return_tensors="pt")
    expected = sum(audio_token_count(int(n)) for n in features["attention_mask"].sum(-1).tolist())
    found = int((text["input_ids"] == audio_token_id).sum())
    if found != expected:
        raise EngineError(
            f"the tokenizer does not map {AUDIO_TOKEN} to the model's audio token id {audio_token_id} "
            f"({found} of {expected} placeholders): tokenizer and weights do not belong together"
        )
    inputs = {
        "input_ids": text["input_ids"],
        "attention_mask": text["attention_mask"],
        "input_features": features["input_features"],
        "feature_attention_mask": features["attention_mask"],
    }
    return {name: value.to(loaded.device) for name, value in inputs.items()}


def end_token_ids(tokenizer: Any) -> list[int]:
    """Ids that end a reply (``<|im_end|>``, ``<|endoftext|>``) that this tokenizer knows."""
    unknown = tokenizer.unk_token_id
    ids = [tokenizer.convert_tokens_to_ids(token) for token in END_TOKENS]
    return [i for i in ids if isinstance(i, int) and i != unknown]


