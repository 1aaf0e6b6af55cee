"""The English-vocabulary copy of a CTranslate2 Whisper model: which tokens stay, the model.bin surgery,
the cache, and the same words from the real offline weights."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from speechlm_demo.engines.base import EngineError
from speechlm_demo.engines.cascade import weights
from speechlm_demo.engines.cascade.asr import FasterWhisperASR, build_asr, pieces
from speechlm_demo.engines.cascade.whisper_vocab import (
    TOKEN_IDS_FILE,
    TokenMap,
    english_model_dir,
    english_token_ids,
    prune_vocabulary,
)
from speechlm_demo.env_settings import CACHE_ENV
from tests.cascade.conftest import need

# Byte-level BPE spellings: "Ġ" is a space, "Ã©" is "é" (two bytes), "ä¸Ń" a CJK character, "Ċ" a newline.
VOCABULARY = ["!", "Ġthe", "Ã©", "Ã", "ä¸Ń", "Ċ", "Ġcaf", "Ġcafé", "<|endoftext|>", "<|en|>", "<|fr|>"]
ENGLISH = [0, 1, 3, 5, 6, 8, 9, 10]


def test_english_keeps_ascii_tokens_single_bytes_and_every_special_token() -> None:
    assert english_token_ids(VOCABULARY) == ENGLISH
    with pytest.raises(EngineError, match="not a Whisper vocabulary"):
        english_token_ids(["a", "b"])


def test_token_map_translates_both_ways() -> None:
    tokens = TokenMap(ENGLISH)
    assert tokens.to_model([8, 9, 1]) == [5, 6, 1]
    assert tokens.from_model([5, 6, 1]) == [8, 9, 1]
    assert not tokens.multilingual
    assert TokenMap([*range(100), 51_864]).multilingual


def _write_model(directory: Path, vocabulary: list[str], version: int = 6) -> np.ndarray:
    """A CTranslate2 model.bin in the real binary layout: a [vocabulary, 3] embedding whose row i holds i,
    an unrelated [2, 2] weight, and the output projection as an alias of the embedding."""
    directory.mkdir(parents=True, exist_ok=True)
    embedding = np.repeat(np.arange(len(vocabulary), dtype=np.float32)[:, None], 3, axis=1)

    def string(text: str) -> bytes:
        raw = text.encode() + b"\0"
        return struct.pack("H", len(raw)) + raw

    def variable(name: str, array: np.ndarray) -> bytes:
        shape = b"".join(struct.pack("I", d) for d in array.shape)
        data = array.tobytes()
        return string(name) + struct.pack("B", array.ndim) + shape + struct.pack("B", 0) + struct.pack("I", len(data)) + data

    blob = struct.pack("I", version) + string("WhisperSpec") + struct.pack("I", 3) + struct.pack("I", 2)
    blob += variable("decoder/embeddings/weight", embedding) + variable("encoder/w", np.eye(2, dtype=np.float32))
    blob += struct.pack("I", 1) + string("decoder/projection/weight") + string("decoder/embeddings/weight")
    (directory / "model.bin").write_bytes(blob)
    (directory / "vocabulary.json").write_text(json.dumps(vocabulary))
    (directory / "config.json").write_text(json.dumps({"suppress_ids": [2, 4, 5], "lang_ids": [9, 10], "alignment_heads": [[1, 2]]}))
    (directory / "tokenizer.json").write_text("{}")
    return embedding


def test_pruning_keeps_the_rows_of_kept_tokens_and_renumbers_the_config(tmp_path: Path) -> None:
    source, target = tmp_path / "full", tmp_path / "english"
    _write_model(source, VOCABULARY)
    target.mkdir()
    prune_vocabulary(source, target, ENGLISH)
    raw = (target / "model.bin").read_bytes()
    rows = np.asarray(ENGLISH, dtype=np.float32).repeat(3)
    assert rows.tobytes() in raw  # the kept rows, in order
    assert len(raw) == len((source / "model.bin").read_bytes()) - (len(VOCABULARY) - len(ENGLISH)) * 12
    assert struct.pack("I", len(ENGLISH)) + struct.pack("I", 3) in raw  # the new shape
    assert b"decoder/projection/weight" in raw and b"encoder/w" in raw
    assert json.loads((target / "vocabulary.json").read_text()) == [VOCABULARY[i] for i in ENGLISH]
    config = json.loads((target / "config.json").read_text())
    assert config == {"suppress_ids": [3], "lang_ids": [6, 7], "alignment_heads": [[1, 2]]}
    assert json.loads((target / TOKEN_IDS_FILE).read_text()) == ENGLISH
    assert (target / "tokenizer.json").read_text() == "{}"


def test_keeping_every_token_copies_the_model_byte_for_byte(tmp_path: Path) -> None:
    source, target = tmp_path / "full", tmp_path / "same"
    _write_model(source, VOCABULARY)
    target.mkdir()
    prune_vocabulary(source, target, list(range(len(VOCABULARY))))
    assert (target / "model.bin").read_bytes() == (source / "model.bin").read_bytes()


def test_the_english_copy_is_made_once_in_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    _write_model(tmp_path / "full", VOCABULARY)
    made = english_model_dir(tmp_path / "full")
    assert made.parent == tmp_path / "cache" / "whisper-english"
    stamp = (made / "model.bin").stat().st_mtime_ns
    assert english_model_dir(tmp_path / "full") == made
    assert (made / "model.bin").stat().st_mtime_ns == stamp
    assert [p.name for p in made.parent.iterdir()] == [made.name]  # no temporary directory left
    _write_model(tmp_path / "full", [*VOCABULARY, "<|de|>"])  # the source changed: a new copy
    assert english_model_dir(tmp_path / "full") != made


def test_a_directory_that_is_not_a_model_an_old_format_or_a_damaged_file_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path / "cache"))
    with pytest.raises(EngineError, match="no model.bin"):
        english_model_dir(tmp_path)
    _write_model(tmp_path / "old", VOCABULARY, version=5)
    with pytest.raises(EngineError, match="binary version 5"):
        english_model_dir(tmp_path / "old")
    good = tmp_path / "damaged"
    _write_model(good, VOCABULARY)
    (good / "model.bin").write_bytes((good / "model.bin").read_bytes()[:80])  # cut inside the embedding
    with pytest.raises(EngineError, match="model.bin is truncated or damaged"):
        english_model_dir(good)
    (good / "model.bin").write_bytes(b"\x06\x00")  # cut inside the header
    with pytest.raises(EngineError, match="truncated or damaged"):
        english_model_dir(good)
    (good / "vocabulary.json").write_text("[\"!\", ")
    with pytest.raises(EngineError, match="vocabulary.json is not valid JSON"):
        english_model_dir(good)
    assert list((tmp_path / "cache" / "whisper-english").iterdir()) == []


def test_long_audio_is_cut_in_its_quietest_moments() -> None:
    rate = 16_000
    rng = np.random.default_rng(0)
    audio = rng.normal(0, 0.1, 70 * rate).astype(np.float32)
    for gap in (24.0, 49.0):
        audio[int(gap * rate) : int((gap + 0.3) * rate)] = 0.0
    parts = pieces(audio, rate)
    cuts = np.cumsum([len(p) for p in parts])[:-1] / rate
    assert len(parts) == 3 and 24.0 < cuts[0] < 24.3 and 49.0 < cuts[1] < 49.3
    assert all(len(p) <= 27 * rate for p in parts)
    assert np.array_equal(np.concatenate(parts), audio)
    assert len(pieces(audio[:rate], rate)) == 1


@pytest.mark.slow
def test_the_english_copy_scores_kept_tokens_exactly_like_the_full_model(tmp_path: Path) -> None:
    need("faster_whisper")
    import ctranslate2

    source = weights.whisper_base_dir()
    kept = english_token_ids(json.loads((source / "vocabulary.json").read_text()))
    assert 40_000 < len(kept) < 41_000
    prune_vocabulary(source, tmp_path, kept)
    tokens = TokenMap.load(tmp_path)
    assert tokens is not None and tokens.multilingual
    features = ctranslate2.StorageView.from_array(np.random.default_rng(0).normal(size=(1, 80, 600)).astype(np.float32))
    prompt = [50258, 50259, 50359, 50363]  # start of transcript, English, transcribe, no timestamps
    scores = []
    for directory, ids in ((source, prompt), (tmp_path, tokens.to_model(prompt))):
        model = ctranslate2.models.Whisper(str(directory), compute_type="float32", intra_threads=1)
        result = model.generate(model.encode(features), [ids], beam_size=1, max_length=5, return_logits_vocab=True)
        scores.append(np.asarray(result[0].logits[0])[0])
    assert scores[0].shape == (51_865,) and scores[1].shape == (len(kept),)
    np.testing.assert_allclose(scores[1], scores[0][kept], rtol=0, atol=1e-4)


@pytest.mark.slow
def test_whisper_with_the_english_vocabulary_hears_the_same_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spoken: Callable[..., np.ndarray]
) -> None:
    need("faster_whisper")
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    english, full = FasterWhisperASR(vocabulary="english"), FasterWhisperASR()
    assert "whisper-english" in english.model_name
    for text in ("What is the capital of France?", "Remind me to call my dentist on Thursday.", "Who painted the Mona Lisa?"):
        audio = spoken(text)
        assert english.transcribe(audio) == full.transcribe(audio)
    with pytest.raises(EngineError, match=r"asr: vocabulary 'english' needs language 'en', not 'de' \(asr kind faster-whisper\)"):
        build_asr({"vocabulary": "english", "language": "de"})
    with pytest.raises(EngineError, match=r"asr\.vocabulary: Input should be 'full' or 'english'"):
        build_asr({"vocabulary": "tiny"})
