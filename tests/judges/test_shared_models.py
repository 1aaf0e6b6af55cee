"""The judge models are loaded once per process and shared by every ``Judges`` (vote worker, Compare tab)."""

from __future__ import annotations

import threading
import time

import pytest

from speechlm_demo.judges.scorer import Judges, once_per_process
from tests.support.speech import speak


def test_a_model_is_loaded_once_even_when_asked_for_from_two_threads_at_once() -> None:
    loads: list[int] = []

    def load() -> object:
        time.sleep(0.1)  # a slow load: the second thread asks while the first is still loading
        loads.append(1)
        return object()

    get = once_per_process(load)
    got: list[object] = []
    threads = [threading.Thread(target=lambda: got.append(get())) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1 and got[0] is got[1] is get()


def test_a_failed_load_is_not_remembered() -> None:
    attempts: list[int] = []

    def load() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("model files missing")
        return "model"

    get = once_per_process(load)
    with pytest.raises(RuntimeError, match="missing"):
        get()
    assert get() == "model" and get() == "model" and len(attempts) == 2


@pytest.mark.slow
@pytest.mark.usefixtures("espeak")
def test_two_judges_score_with_one_copy_of_the_models() -> None:
    text = "The weather today is sunny and warm, a good day for a walk in the park."
    speech = speak(text, 16_000)
    votes, compare = Judges(), Judges()
    first, second = votes.score(speech, 16_000, text), compare.score(speech, 16_000, text)
    assert first["error"] == second["error"] == ""
    assert first["roundtrip_wer"] == second["roundtrip_wer"] and first["roundtrip_wer"] <= 0.3
    assert first["dnsmos_ovrl"] == second["dnsmos_ovrl"] and 1.0 <= first["dnsmos_ovrl"] <= 5.0
    assert votes._roundtrip.asr is compare._roundtrip.asr
    assert votes._mos() is compare._mos()
