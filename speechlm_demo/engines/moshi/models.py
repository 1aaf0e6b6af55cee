"""Building Moshi's two models (Mimi codec + LM) with the ``moshi`` package's own loaders.

Three sources: a hub repo or local files (:func:`load_checkpoint`, the engine's path) and random weights
of the full or a tiny architecture (:func:`build_random`, for the benchmark and the tests). The tiny LM
keeps Moshi's real token layout: 17 streams (1 text + 8 agent + 8 user codebooks), dep_q 8, card 2048.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import torch
from moshi.models import LMGen, LMModel, MimiModel, loaders
from moshi.utils.compile import no_compile

log = logging.getLogger(__name__)

Size = Literal["full", "tiny"]
TINY_TEXT_CARD = 64
TINY_LM_KWARGS: dict[str, Any] = {
    **loaders._lm_kwargs,
    "dim": 64,
    "num_heads": 4,
    "num_layers": 2,
    "text_card": TINY_TEXT_CARD,
    "context": 100,
    "depformer_dim": 64,
    "depformer_dim_feedforward": 128,
    "depformer_num_heads": 4,
    "depformer_num_layers": 1,
}
DTYPES = {"bfloat16": torch.bfloat16, "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16,
          "float32": torch.float32, "fp32": torch.float32}


def tiny_mimi_config() -> dict[str, Any]:
    """Mimi's real config, shrunk (same frame rate, hop and 2048-entry codebooks)."""
    config = copy.deepcopy(loaders._mimi_config)
    config["seanet"].update(n_filters=8, dimension=64)
    config["quantizer"].update(dimension=32, input_dimension=64, output_dimension=64)
    config["transformer"].update(d_model=64, num_heads=2, num_layers=1, dim_feedforward=128,
                                 input_dimension=64, output_dimensions=[64])
    return config


def torch_device(name: str) -> torch.device:
    """Catalogue device names to torch: ROCm builds of torch call their GPUs ``cuda``."""
    kind, _, index = name.partition(":")
    if kind == "rocm":
        return torch.device(f"cuda:{index or 0}")
    if kind == "mps":
        return torch.device("mps")
    return torch.device(name)


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """``bfloat16`` / ``float16`` / ``float32`` (or a torch dtype)."""
    if isinstance(name, torch.dtype):
        return name
    try:
        return DTYPES[str(name).lower()]
    except KeyError:
        raise ValueError(f"unknown dtype {name!r}; use one of {', '.join(DTYPES)}") from None


@contextlib.contextmanager
def inference(device: torch.device) -> Iterator[None]:
    """No gradients; this thread on ``device`` (CUDA graphs are captured per device); no torch.compile off
    CUDA (on CPU it costs ~20 s at the first frame and gains nothing)."""
    on_cuda = device.type == "cuda"
    with torch.no_grad(), (torch.cuda.device(device) if on_cuda else no_compile()):
        yield


@dataclass
class MoshiModels:
    """What a session needs: the codec, the LM, a text tokenizer (None for random weights) and generation defaults."""

    mimi: MimiModel
    lm: LMModel
    tokenizer: Any = None
    lm_gen_config: dict[str, Any] | None = None

    def generator(self, temp: float, temp_text: float, top_k: int, top_k_text: int) -> LMGen:
        """An LMGen with the given sampling; top-k values are clamped to the vocabularies."""
        return LMGen(self.lm, temp=float(temp), temp_text=float(temp_text), top_k=max(1, min(int(top_k), self.lm.card)),
                     top_k_text=max(1, min(int(top_k_text), self.lm.text_card)))


def build_random(size: Size, device: torch.device, dtype: torch.dtype) -> MoshiModels:
    """Moshi's full (7B LM + Mimi) or tiny architecture with random weights; nothing is downloaded."""
    mimi_config = loaders._mimi_config if size == "full" else tiny_mimi_config()
    lm_kwargs = loaders._lm_kwargs if size == "full" else TINY_LM_KWARGS
    mimi = loaders.get_mimi(None, mimi_config, device=device)
    lm = loaders.get_moshi_lm(None, lm_kwargs=lm_kwargs, device=device, dtype=dtype)
    return MoshiModels(mimi, lm)


def load_checkpoint(settings: dict[str, Any], device: torch.device, dtype: torch.dtype) -> MoshiModels:
    """Load through ``CheckpointInfo.from_hf_repo``: a hub repo, with any file overridden by a local path.

    ``settings`` keys (catalogue ``defaults``): hf_repo, moshi_weights, mimi_weights, tokenizer, config
    (a config.json; int8 repos set ``quantize`` there, which needs bitsandbytes on CUDA).
    """
    info = loaders.CheckpointInfo.from_hf_repo(
        settings.get("hf_repo") or loaders.DEFAULT_REPO,
        moshi_weights=settings.get("moshi_weights"),
        mimi_weights=settings.get("mimi_weights"),
        tokenizer=settings.get("tokenizer"),
        config_path=settings.get("config"),
    )
    log.info("loading Mimi from %s", info.mimi_weights)
    mimi = info.get_mimi(device=device)
    log.info("loading the Moshi LM from %s (%s)", info.moshi_weights, dtype)
    lm = info.get_moshi(device=device, dtype=dtype)
    return MoshiModels(mimi, lm, info.get_text_tokenizer(), dict(info.lm_gen_config))


def parameter_count(module: torch.nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in module.parameters())
