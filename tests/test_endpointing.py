"""Completeness judgement on transcripts."""

from __future__ import annotations

import pytest

from speechlm_demo.turntaking.endpointing import asks, is_complete


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "Tell me a joke about cats.",
        "How many legs does a spider have?",
        "Who are you?",
        "What do you think?",
        "Thanks a lot",
        "Which planet is the largest",
        "Can you explain how a rainbow forms?",
    ],
)
def test_finished_requests(text: str) -> None:
    assert is_complete(text)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "Well...",
        "Well,",
        "Well.",
        "Um",
        "So, uh",
        "Can you explain?",
        "Can you explain",
        "Can you tell me",
        "What is the",
        "I was wondering if",
        "Tell me about",
        "and",
        "Hello, and",
    ],
)
def test_unfinished_phrases(text: str) -> None:
    assert not is_complete(text)


@pytest.mark.parametrize(
    "text",
    [
        "What is the capital of France?",
        "Tell me a joke about cats.",
        "Well which planet is the largest?",
        "I was wondering if you could tell me a joke.",
        "I would like to know how tall the Eiffel tower is.",
        "I like science fiction. Can you recommend a book?",
    ],
)
def test_a_question_or_a_request_asks(text: str) -> None:
    assert is_complete(text) and asks(text)


@pytest.mark.parametrize(
    "text", ["I need some advice.", "I am going to Italy next week.", "Okay, here is my question.", "My plant has yellow leaves."]
)
def test_a_finished_statement_asks_nothing(text: str) -> None:
    assert is_complete(text) and not asks(text)


def test_a_request_phrase_at_the_very_end_dangles() -> None:
    assert not is_complete("I would like to know.") and not is_complete("I was just wondering.")


@pytest.mark.parametrize(
    "text",
    ["How much is 20 divided by 4?", "Is 17 bigger than 12?", "Can you count from 1 to 10?", "Was it about 42?", "What is 7 times 8?"],
)
def test_a_question_ending_in_a_number_is_finished_and_asks(text: str) -> None:
    # Whisper writes numbers as digits; the rule skipped them and read "...divided by" as mid-thought
    assert is_complete(text) and asks(text)


@pytest.mark.parametrize("text", ["What is 20 divided", "How much is 3 plus", "What is 12 minus", "Can you add 5 and"])
def test_arithmetic_left_hanging_is_unfinished(text: str) -> None:
    assert not is_complete(text) and not is_complete(text + "?")
