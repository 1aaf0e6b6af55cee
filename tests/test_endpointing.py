"""Completeness judgement on transcripts."""

from __future__ import annotations

import pytest

from speechlm_demo.turntaking.endpointing import is_complete


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
