"""Tiny random-weight Qwen2.5-Omni and Qwen2-Audio checkpoints, saved like the hub repositories.

Same architectures and file layout as Qwen/Qwen2.5-Omni-* and Qwen/Qwen2-Audio-7B-Instruct (config.json,
safetensors, tokenizer files, preprocessor_config.json, spk_dict.pt), shrunk so that a turn runs on a CPU
in seconds. What made the full Omni pipeline run (see ../shared/ENGINES.md): the thinker's vocabulary holds
the talker's tts_text ids and the speakers' bos tokens; the talker's embedding_size is the thinker's hidden
size; BigVGAN's upsample_initial_channel >= 64; the DiT's codec table covers every talker code (random
weights may sample any of the talker's 8448 codes); spk_dict.pt sits beside the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    PreTrainedTokenizerFast,
    Qwen2_5OmniConfig,
    Qwen2_5OmniForConditionalGeneration,
    Qwen2AudioConfig,
    Qwen2AudioForConditionalGeneration,
    WhisperFeatureExtractor,
)

SPECIAL_TOKENS = [
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>",
    "<|IMAGE|>", "<|VIDEO|>", "<|vision_bos|>", "<|vision_eos|>",
]
CORPUS = [
    "You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group.",
    "The capital of France is Paris. A spider has eight legs. Hello, how are you today?",
    "system user assistant Audio 1: 2: 3: answer in one or two short plain sentences.",
]
THINKER_VOCAB = 512  # > the tokenizer's size: room for the talker's tts_text ids and the speakers' bos ids
TTS_TEXT_PAD, TTS_TEXT_START, TTS_TEXT_END, SPEAKER_BOS = 500, 501, 502, 503
HIDDEN = 32
ROPE = {"rope_type": "default", "rope_theta": 1_000_000.0, "mrope_section": [2, 3, 3]}  # 2 * 8 = head_dim 16
TALKER_CODES = 8448  # Qwen2.5-Omni's codec vocabulary (its special codes 8292..8296 must exist)


def save_tokenizer(directory: Path) -> dict[str, int]:
    """A byte-level BPE tokenizer with Qwen's special tokens, trained on a few lines; returns their ids."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=360, special_tokens=SPECIAL_TOKENS, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=32768
    )
    fast.save_pretrained(directory)
    ids = {token: tokenizer.token_to_id(token) for token in SPECIAL_TOKENS}
    assert max(ids.values()) < TTS_TEXT_PAD and tokenizer.get_vocab_size() <= TTS_TEXT_PAD
    return ids


def write_only_words(lm_head: torch.nn.Linear, directory: Path) -> None:
    """Zero the output rows of every id that decodes to no letter: random logits then always peak on a word
    piece, so greedy decoding writes text a TTS can say (and never ends early on a special token)."""
    tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
    letters = [any(c.isascii() and c.isalpha() for c in tokenizer.decode([i])) for i in range(lm_head.out_features)]
    with torch.no_grad():
        lm_head.weight[~torch.tensor(letters)] = 0.0


def save_feature_extractor(directory: Path) -> None:
    """Whisper log-mel features, 128 bins at 16 kHz, as both Qwen models use."""
    WhisperFeatureExtractor(feature_size=128, sampling_rate=16_000).save_pretrained(directory)


def _text_config(vocab: int) -> dict:
    return {
        "vocab_size": vocab, "hidden_size": HIDDEN, "intermediate_size": 64, "num_hidden_layers": 1,
        "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 4096,
        "rope_parameters": dict(ROPE),
    }


def _audio_config() -> dict:
    return {
        "num_mel_bins": 128, "encoder_layers": 1, "encoder_attention_heads": 2, "encoder_ffn_dim": 32,
        "d_model": 16, "output_dim": HIDDEN, "max_source_positions": 1500, "n_window": 100,
    }


def build_tiny_omni(directory: Path, *, seed: int = 0) -> Path:
    """Save a ~0.5M-parameter Qwen2.5-Omni (thinker + talker + token2wav) with speakers Chelsie and Ethan."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = save_tokenizer(directory)
    save_feature_extractor(directory)
    token_ids = {
        "audio_token_index": ids["<|AUDIO|>"], "image_token_index": ids["<|IMAGE|>"],
        "video_token_index": ids["<|VIDEO|>"], "audio_start_token_id": ids["<|audio_bos|>"],
        "audio_end_token_id": ids["<|audio_eos|>"],
    }
    thinker = {
        "audio_config": _audio_config(),
        "vision_config": {
            "depth": 1, "hidden_size": 16, "intermediate_size": 32, "num_heads": 2, "out_hidden_size": HIDDEN,
            "fullatt_block_indexes": [0],
        },
        "text_config": _text_config(THINKER_VOCAB),
        "user_token_id": ids["<|im_start|>"],
        "vision_start_token_id": ids["<|vision_bos|>"],  # not a declared field, but the hub configs have it
        "vision_end_token_id": ids["<|vision_eos|>"],
        **token_ids,
    }
    talker = {
        **_text_config(TALKER_CODES), "embedding_size": HIDDEN, "head_dim": 16,
        "tts_text_start_token_id": TTS_TEXT_START, "tts_text_end_token_id": TTS_TEXT_END,
        "tts_text_pad_token_id": TTS_TEXT_PAD, "vision_start_token_id": ids["<|vision_bos|>"],
        "vision_end_token_id": ids["<|vision_eos|>"], **token_ids,
    }
    token2wav = {
        "dit_config": {
            "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "head_dim": 16, "ff_mult": 2,
            "emb_dim": 16, "enc_emb_dim": 16, "enc_dim": 16, "enc_channels": [16, 16, 16, 16, 48],
            "enc_attention_channels": 8, "enc_se_channels": 8, "num_embeds": TALKER_CODES,
            "look_ahead_layers": [0], "look_backward_layers": [1], "mel_dim": 80,
        },
        "bigvgan_config": {
            "mel_dim": 80, "upsample_initial_channel": 64, "resblock_kernel_sizes": [3],
            "resblock_dilation_sizes": [[1, 3, 5]],
        },
    }
    config = Qwen2_5OmniConfig(thinker_config=thinker, talker_config=talker, token2wav_config=token2wav)
    torch.manual_seed(seed)
    model = Qwen2_5OmniForConditionalGeneration(config)
    for module in model.token2wav.code2wav_bigvgan_model.modules():
        if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
            module.reset_parameters()  # PyTorch's init: audible; transformers' 0.02-std init gives ~1e-8 peaks
    write_only_words(model.thinker.lm_head, directory)
    model.save_pretrained(directory)
    generator = torch.Generator().manual_seed(seed)
    speakers = {
        name: {
            "bos_token": SPEAKER_BOS,
            "cond": torch.randn(1, 16, generator=generator),
            "ref_mel": torch.randn(1, 120, 80, generator=generator),
        }
        for name in ("Chelsie", "Ethan")
    }
    torch.save(speakers, directory / "spk_dict.pt")
    return directory


def build_tiny_qwen2_audio(directory: Path, *, seed: int = 0) -> Path:
    """Save a tiny Qwen2-Audio (Whisper-style encoder + projector + Qwen2 decoder)."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = save_tokenizer(directory)
    save_feature_extractor(directory)
    text = _text_config(THINKER_VOCAB)
    text.pop("rope_parameters")  # plain Qwen2: 1-D rotary positions
    text["model_type"] = "qwen2"
    config = Qwen2AudioConfig(
        audio_config={k: v for k, v in _audio_config().items() if k not in ("output_dim", "n_window")},
        text_config=text,
        audio_token_index=ids["<|AUDIO|>"],
    )
    torch.manual_seed(seed)
    model = Qwen2AudioForConditionalGeneration(config)
    write_only_words(model.lm_head, directory)
    model.save_pretrained(directory)
    return directory
