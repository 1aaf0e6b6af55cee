"""The Compare tab's judge table: both replies scored from what the tab shows (Gradio audio + reply text), by
judges of its own, off the UI's threads, never in a vote's way."""

from __future__ import annotations

import asyncio
import random
import threading
from pathlib import Path

import gradio as gr
import numpy as np
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
    table = asyncio.run(judge_pair(audio, text, None, "(no text)")).set_index("judge")
    assert 1.0 <= table.loc["DNSMOS OVRL", "A"] <= 5.0 and table.loc["round-trip WER", "A"] <= 0.3
    assert (table["B"] == "–").all()
    garbage = asyncio.run(judge_pair((16_000, "not audio"), text, audio, "(no text)")).set_index("judge")
    assert (garbage["A"] == "–").all() and table.loc["duration (s)", "A"] == garbage.loc["duration (s)", "B"]
    assert garbage.loc["round-trip WER", "B"] == "–"  # no reply text: nothing to compare the ASR with


def test_judges_can_be_switched_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPEECHLM_JUDGES", "0")
    table = asyncio.run(judge_pair((16_000, [0, 1, 2]), "hi", None, ""))
    assert "off on this host" in table["judge"].iloc[0]


class LoadingASR:
    """An ASR whose model load blocks until released (a slow DNSMOS / Whisper load): records the loading thread."""

    sample_rate = 16_000

    def __init__(self) -> None:
        self.loading, self.release = threading.Event(), threading.Event()
        self.loaded_on = ""

    def load(self) -> LoadingASR:
        self.loaded_on = threading.current_thread().name
        self.loading.set()
        assert self.release.wait(60), "the test never released the load"
        return self

    def transcribe(self, pcm: np.ndarray) -> str:
        return "it is noon"


class QuickASR(LoadingASR):
    def load(self) -> QuickASR:
        return self


def test_a_vote_is_taken_and_judged_while_the_compare_judges_are_still_loading(tmp_path: Path) -> None:
    from speechlm_demo.judges.background import JudgeWorker
    from speechlm_demo.judges.records import JudgementStore, read_judgements
    from speechlm_demo.judges.scorer import Judges
    from speechlm_demo.ui.judges_view import PairJudges
    from speechlm_demo.votes.pending import PendingVotes
    from speechlm_demo.votes.rounds import BlindArena
    from speechlm_demo.votes.store import VoteStore
    from tests.votes.conftest import make_entry
    from tests.votes.test_integrity import vote_round

    store = VoteStore(f"sqlite:///{tmp_path / 'votes.sqlite3'}")
    worker = JudgeWorker(JudgementStore(store), lambda: ["Moshi"], Judges(dnsmos=False, make_asr=QuickASR().load))
    arena = BlindArena(store, lambda: [make_entry("alpha"), make_entry("beta")], pending=PendingVotes(store), rng=random.Random(1), min_listen_s=0.0, on_vote=worker.on_vote)
    slow = LoadingASR()
    compare_judges = PairJudges(Judges(dnsmos=False, make_asr=slow.load))
    reply = (16_000, to_int16(0.3 * np.sin(np.arange(16_000) / 3.0)))

    async def scenario() -> pd.DataFrame:
        judging = asyncio.create_task(compare_judges.table(reply, "It is noon.", None, "(no text)"))
        assert await asyncio.to_thread(slow.loading.wait, 30)  # the Compare judges are loading their model...
        assert not judging.done()  # ... and this event loop (the UI) carries on meanwhile
        receipt = vote_round(arena, "voter-1", {})  # a vote now is taken at once
        assert receipt.message.startswith("Thanks") and store.count() == 1
        judged = threading.Event()
        threading.Thread(target=lambda: (worker.join(), judged.set()), daemon=True).start()
        assert await asyncio.to_thread(judged.wait, 60), "the vote's judges waited for the Compare judges"
        assert set(read_judgements(store)["status"]) == {"done"} and not judging.done()
        slow.release.set()
        return await judging

    try:
        table = asyncio.run(scenario()).set_index("judge")
    finally:
        slow.release.set()
        worker.close()
        arena.close()
        store.close()
    assert table.loc["round-trip WER", "A"] == 0.0 and (table["B"] == "–").all()
    assert slow.loaded_on.startswith("compare-judges")  # loaded on the tab's judge thread, not the caller's


def test_no_reply_on_either_side_leaves_the_table_as_it_is() -> None:
    """The Compare tab's judge step after a comparison without reply audio shows nothing new (it used to show a
    table of "null")."""

    skipped = asyncio.run(judge_pair(None, "", None, ""))
    assert skipped == gr.skip() and not isinstance(skipped, pd.DataFrame)
