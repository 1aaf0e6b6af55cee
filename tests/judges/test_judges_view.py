"""The Compare tab's judge table: both replies scored from what the tab shows (Gradio audio + reply text)."""

from __future__ import annotations

import pandas as pd
import pytest

from speechlm_demo.audio import to_int16
from speechlm_demo.ui.judges_view import judge_pair
from tests.support.speech import speak


@pytest.mark.slow
@pytest.mark.usefixtures("espeak")
def test_both_replies_are_judged_and_a_missing_one_is_empty() -> None:
    text = "It is half past four in the afternoon."
    audio = (22_050, to_int16(0.5 * speak(text, 22_050)))
    table = judge_pair(audio, text, None, "(no text)").set_index("judge")
    assert 1.0 <= table.loc["DNSMOS OVRL", "A"] <= 5.0 and table.loc["round-trip WER", "A"] <= 0.3
    assert table["B"].isna().all()
    garbage = judge_pair((16_000, "not audio"), text, audio, "(no text)").set_index("judge")
    assert garbage["A"].isna().all() and table.loc["duration (s)", "A"] == garbage.loc["duration (s)", "B"]
    assert pd.isna(garbage.loc["round-trip WER", "B"])  # no reply text: nothing to compare the ASR with


def test_judges_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECHLM_JUDGES", "0")
    table = judge_pair((16_000, [0, 1, 2]), "hi", None, "")
    assert "off on this host" in table["judge"].iloc[0]
