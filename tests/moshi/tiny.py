"""Write a tiny random-weight Moshi checkpoint (Mimi + LM + SentencePiece tokenizer + configs) to a folder.

The files are exactly what the ``moshi`` package's loaders read for a real model, so the engine and
Kyutai's own server load them through their normal code path, offline.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import sentencepiece
import torch
from moshi.models import loaders
from safetensors.torch import save_file

from speechlm_demo.engines.moshi.models import TINY_LM_KWARGS, TINY_TEXT_CARD, tiny_mimi_config

CORPUS = (
    "hello there how are you doing today",
    "i am moshi and i can listen while i speak",
    "the weather is nice and the sky is blue",
    "tell me a story about a cat and a dog",
    "what time is it now in paris",
    "thank you very much for your question",
)


def _tokenizer(path: Path) -> None:
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS * 20), model_writer=model, vocab_size=TINY_TEXT_CARD,
        model_type="bpe", unk_id=0, bos_id=1, eos_id=2, pad_id=3, minloglevel=2,
    )
    path.write_bytes(model.getvalue())


def write_tiny_checkpoint(folder: Path, seed: int = 1234) -> dict[str, str]:
    """Create the files; returns the catalogue ``defaults`` keys that point at them."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    mimi_config = tiny_mimi_config()
    (folder / "mimi.json").write_text(json.dumps(mimi_config))
    mimi = loaders.get_mimi(None, mimi_config, device="cpu")
    save_file({k: v.contiguous() for k, v in mimi.state_dict().items()}, folder / "mimi.safetensors")
    lm = loaders.get_moshi_lm(None, lm_kwargs=TINY_LM_KWARGS, device="cpu", dtype=torch.float32)
    save_file({k: v.contiguous() for k, v in lm.state_dict().items()}, folder / "moshi.safetensors")
    config = {**TINY_LM_KWARGS, "mimi_config_name": f"file://{folder / 'mimi.json'}", "model_type": "moshi"}
    (folder / "config.json").write_text(json.dumps(config))
    _tokenizer(folder / "tokenizer.model")
    return {
        "moshi_weights": str(folder / "moshi.safetensors"),
        "mimi_weights": str(folder / "mimi.safetensors"),
        "tokenizer": str(folder / "tokenizer.model"),
        "config": str(folder / "config.json"),
    }
