"""Sentence/clause chunking of streamed LLM text."""

from __future__ import annotations

import re

import pytest

from speechlm_demo.engines.cascade.chunking import SentenceChunker, clean_for_speech, speakable_chunks


def tokens(text: str) -> list[str]:
    """Split like an LLM tokenizer would stream: words with their leading spaces."""
    return re.findall(r"\s*\S+", text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello there! How are you? I am fine.", ["Hello there!", "How are you?", "I am fine."]),
        ("It costs 3.5 dollars. Ask Dr. Smith today.", ["It costs 3.5 dollars.", "Ask Dr. Smith today."]),
        ("We have 3,000 people, a lot.", ["We have 3,000 people, a lot."]),
        ("Well, yes; sure.", ["Well, yes;", "sure."]),
        (
            "When you go to the shop later today, buy milk: and eggs",
            ["When you go to the shop later today,", "buy milk: and eggs"],
        ),
        ("Short list: one, two.", ["Short list: one, two."]),
        ('He said "hi." Then he left.', ['He said "hi."', "Then he left."]),
        ("The U.S. is big. J. R. Tolkien wrote it.", ["The U.S. is big.", "J. R. Tolkien wrote it."]),
        ("1. Apples\n2. Pears", ["1. Apples", "2. Pears"]),
        ("Wait... what?", ["Wait...", "what?"]),
        ("No. I disagree, see Mr. Smith etc. for more.", ["No.", "I disagree, see Mr. Smith etc. for more."]),
        ("No final punctuation", ["No final punctuation"]),
        ("", []),
    ],
)
def test_chunks_whatever_the_piece_boundaries(text: str, expected: list[str]) -> None:
    assert list(speakable_chunks(tokens(text))) == expected
    assert list(speakable_chunks(list(text))) == expected  # one character at a time
    assert list(speakable_chunks([text])) == expected  # all at once


def test_a_sentence_is_released_as_soon_as_whitespace_confirms_it() -> None:
    chunker = SentenceChunker()
    assert chunker.feed("Paris is the capital.") == []  # could still be "capital.5"
    assert chunker.feed(" It") == ["Paris is the capital."]
    assert chunker.flush() == "It"
    assert chunker.flush() is None


def test_clause_threshold_is_configurable() -> None:
    assert list(speakable_chunks(tokens("Yes, of course."), min_clause_words=1)) == ["Yes,", "of course."]


def test_clean_for_speech_drops_markdown() -> None:
    assert clean_for_speech("**Paris** is `the` # capital") == "Paris is the capital"


def test_a_long_first_sentence_is_cut_before_a_joining_word() -> None:
    chunker = SentenceChunker(first_max_words=5)
    text = "The sky is blue because of a process called scattering which is fun. And more"
    chunks = [c for piece in text.split(" ") for c in chunker.feed(piece + " ")]
    assert chunks == ["The sky is blue because of a process called scattering", "which is fun."]


def test_first_cut_rules() -> None:
    chunker = SentenceChunker(first_max_words=4)
    out = []
    for piece in "The moon is approximately far away from Earth and it is bright. Next sentence with more".split(" "):
        out += chunker.feed(piece + " ")
    out.append(chunker.flush())
    assert out[0] == "The moon is approximately far away"
    assert out[1] == "from Earth and it is bright."  # only the first chunk is cut early
    assert out[2] == "Next sentence with more"


def test_a_first_sentence_may_be_cut_before_its_verb() -> None:
    chunker = SentenceChunker(first_max_words=3)
    chunks = [c for piece in "The capital of France is Paris. It is".split(" ") for c in chunker.feed(piece + " ")]
    assert chunks == ["The capital of France", "is Paris."]
    later = SentenceChunker(first_max_words=3)
    later.feed("Yes. ")
    assert later.feed("The capital of France is Paris. ") == ["The capital of France is Paris."]  # only the first chunk
