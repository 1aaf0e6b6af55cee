"""GLM-4-Voice client against a fake model server; its three local models are stand-ins of the same
shape (the real ones need torch, CUDA and the GLM-4-Voice repository: see local_models.py)."""

from __future__ import annotations

import pytest

from speechlm_demo.engines.base import AudioOut, ErrorEvent, SessionOptions, TextOut
from speechlm_demo.engines.glm4_voice.client import Glm4VoiceEngine
from speechlm_demo.engines.glm4_voice.local_models import GlmModels
from speechlm_demo.engines.glm4_voice.protocol import ProtocolError, ServerError, TokenLineReader, build_prompt
from speechlm_demo.engines.server_client import ServerFailure

from .conftest import (
    barge_in_while_quiet,
    client_entry,
    quiet_message,
    quiet_turn_then_next,
    user_turn,
    with_echo_fallback,
)
from .fake_glm4_voice import CountingSpeechTokenizer, FakeGlm4Voice, ToneDecoder, WordTokenizer
from .serving import FakeHTTPServer

CLASS = "speechlm_demo.engines.glm4_voice.client:Glm4VoiceEngine"


def engine_for(url: str, decoder: ToneDecoder | None = None, fallback: bool = False, **defaults) -> Glm4VoiceEngine:
    defaults = {"read_timeout_s": 3, **defaults}
    engine = Glm4VoiceEngine(client_entry("glm-4-voice", CLASS, (16_000, 22_050), url=url, url_env="", fallback="echo" if fallback else None, **defaults))
    engine.models = GlmModels(WordTokenizer(), CountingSpeechTokenizer(), decoder)
    if fallback:
        with_echo_fallback(engine)
    engine.load()
    return engine


def test_token_lines_and_the_upstream_error_line() -> None:
    reader = TokenLineReader()
    data = b'{"token_id": 5, "error_code": 0}\n{"token_id": 1001, "error_code": 0}\n'
    assert [t for i in range(len(data)) for t in reader.feed(data[i : i + 1])] == [5, 1001]
    with pytest.raises(ServerError, match="Server Error \\(error_code 1\\)"):
        TokenLineReader().feed(b'{"text": "Server Error", "error_code": 1}\n')
    with pytest.raises(ProtocolError):
        TokenLineReader().feed(b"Traceback\n")


def test_prompt_carries_the_previous_turn() -> None:
    first = build_prompt("", "<|begin_of_audio|><|audio_1|><|end_of_audio|>")
    assert first.startswith("<|system|>\nUser will provide you with a speech instruction.")
    assert first.endswith("<|user|>\n<|begin_of_audio|><|audio_1|><|end_of_audio|><|assistant|>streaming_transcription\n")
    second = build_prompt(first + "Hello", "X")
    assert second.count("<|system|>") == 1 and "Hello<|user|>\nX" in second


def test_a_turn_streams_text_and_decodes_speech_in_growing_blocks(options: SessionOptions) -> None:
    fake, decoder = FakeGlm4Voice(), ToneDecoder()
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, decoder)
        history: list[dict] = []
        events = list(engine.respond(user_turn(2.0), history, options))
        list(engine.respond(user_turn(1.0, turn_id=2), history, options))
    assert [b for b, _ in decoder.blocks] == [25, 50, 55, 25, 50, 55] and [f for _, f in decoder.blocks] == [False, False, True] * 2
    audio = [e for e in events if isinstance(e, AudioOut)]
    assert sum(e.duration_s for e in audio) == pytest.approx(130 * 0.08, abs=0.01) and audio[0].sample_rate == 22_050
    assert [e.text for e in events if isinstance(e, TextOut) and e.final] == ["The capital of France is Paris."]
    first, second = fake.requests
    assert first["prompt"].count("<|audio_") == 25 and first["temperature"] == 0.2 and first["top_p"] == 0.8
    assert second["prompt"].startswith(first["prompt"]) and "The capital of France is Paris.<|audio_0|>" in second["prompt"]


def test_without_a_decoder_replies_are_text_only_and_say_so(options: SessionOptions) -> None:
    with FakeHTTPServer(FakeGlm4Voice().app) as url:
        engine = engine_for(url)
        events = list(engine.respond(user_turn(), [], options))
    assert not [e for e in events if isinstance(e, AudioOut)]
    assert "text only" in next(e for e in events if isinstance(e, ErrorEvent)).message


@pytest.mark.parametrize(
    ("behaviour", "message"),
    [
        ("error", "Server Error \\(error_code 1\\)"),
        ("die", "broke off"),
        ("garbage", "not its reply format"),
        ("off_codebook", "not its reply format: token id 1001000 is past the 16384 speech tokens \\(ids 1000-17383\\)"),
    ],
)
def test_server_faults_are_clear(behaviour: str, message: str, options: SessionOptions) -> None:
    with FakeHTTPServer(FakeGlm4Voice(behaviour).app) as url:
        engine = engine_for(url, ToneDecoder())
        with pytest.raises(ServerFailure, match=message):
            list(engine.respond(user_turn(), [], options))


def test_refused_before_any_reply_goes_to_the_fallback(options: SessionOptions) -> None:
    with FakeHTTPServer(FakeGlm4Voice("refuse").app) as url:
        engine = engine_for(url, fallback=True)
        turn = user_turn()
        events = list(engine.respond(turn, [], options))
    assert turn.timeline.extra["answered_by"] == "echo" and any(isinstance(e, AudioOut) for e in events)


@pytest.mark.parametrize("behaviour", ["silent", "stall"])
def test_a_barge_in_while_the_server_is_quiet_ends_the_turn_at_once(behaviour: str, options: SessionOptions) -> None:
    fake = FakeGlm4Voice(behaviour, stall_s=4.0)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, ToneDecoder(), read_timeout_s=8, health_backoff_s=0.01)
        _, second = barge_in_while_quiet(engine, fake, options)
    assert [e.text for e in second if isinstance(e, TextOut) and e.final] == ["The capital of France is Paris."]


@pytest.mark.parametrize(("behaviour", "partial"), [("silent", ""), ("stall", "The capital of France is Paris.")])
def test_a_server_that_goes_quiet_ends_the_turn_at_the_read_timeout_and_the_next_turn_works(
    behaviour: str, partial: str, options: SessionOptions
) -> None:
    """Silent before the first byte, or mid-reply (10 tokens, then nothing on an open connection): the turn
    ends read_timeout_s after the last byte, saying which; the next turn is answered."""
    fake = FakeGlm4Voice(behaviour)
    with FakeHTTPServer(fake.app) as url:
        engine = engine_for(url, ToneDecoder(), read_timeout_s=1, health_backoff_s=0.01)
        events, second = quiet_turn_then_next(engine, fake, quiet_message("glm-4-voice", behaviour), options)
    assert "".join(e.text for e in events if isinstance(e, TextOut)) == partial
    assert [e.text for e in second if isinstance(e, TextOut) and e.final] == ["The capital of France is Paris."]
    assert sum(e.duration_s for e in second if isinstance(e, AudioOut)) == pytest.approx(130 * 0.08, abs=0.01)


def test_the_real_tokenizer_counts_its_speech_tokens(tmp_path) -> None:
    """HFGlmTokenizer on a tokenizer saved to disk: the codebook's size comes from the vocabulary."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    from speechlm_demo.engines.glm4_voice.local_models import HFGlmTokenizer
    from speechlm_demo.engines.glm4_voice.protocol import speech_code

    fast = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"hello": 0, "[UNK]": 1}, unk_token="[UNK]")))
    fast.add_special_tokens({"additional_special_tokens": ["<|user|>", "<|begin_of_audio|>", *(f"<|audio_{i}|>" for i in range(50)), "<|end_of_audio|>"]})
    fast.save_pretrained(tmp_path)
    tokenizer = HFGlmTokenizer(str(tmp_path))
    assert (tokenizer.audio_offset, tokenizer.audio_tokens) == (4, 50)
    assert speech_code(53, tokenizer.audio_offset, tokenizer.audio_tokens) == 49
    with pytest.raises(ProtocolError, match="token id 54 is past the 50 speech tokens"):
        speech_code(54, tokenizer.audio_offset, tokenizer.audio_tokens)


def test_the_speech_tokens_are_counted_in_a_vocabulary_keyed_by_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    """GLM-4-Voice-9b's tokenizer is GLM-4's tiktoken ChatGLM4Tokenizer: ``get_vocab`` keys its base vocabulary by
    bytes (``self.decoder``: rank -> bytes) and its added tokens by text."""
    import transformers
    from transformers import PreTrainedTokenizer

    from speechlm_demo.engines.glm4_voice.local_models import HFGlmTokenizer

    class BytesVocabTokenizer(PreTrainedTokenizer):
        def __init__(self, **kwargs) -> None:
            self.ranks = {b"h": 0, b"<|audio_x|>": 1}
            self.decoder = {rank: token for token, rank in self.ranks.items()}
            super().__init__(**kwargs)

        @property
        def vocab_size(self) -> int:
            return len(self.ranks)

        def get_vocab(self) -> dict:
            return {**{self._convert_id_to_token(i): i for i in range(self.vocab_size)}, **self.added_tokens_encoder}

        def _tokenize(self, text: str, **kwargs) -> list:
            return [self.decoder[0]]

        def _convert_token_to_id(self, token) -> int:
            return self.ranks[token]

        def _convert_id_to_token(self, index: int):
            return self.decoder.get(index, "")

    fake = BytesVocabTokenizer()
    fake.add_special_tokens({"additional_special_tokens": ["<|user|>", *(f"<|audio_{i}|>" for i in range(50))]})
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *args, **kwargs: fake)
    tokenizer = HFGlmTokenizer("glm-4-voice-9b")
    assert (tokenizer.audio_offset, tokenizer.audio_tokens) == (3, 50)
