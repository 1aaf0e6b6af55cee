"""The user's words for engines that report none: a recogniser in the turn layer (``listen_asr``).

The ``transcript`` and ``combined`` end-of-turn rules read the words of the turn so far. The cascade
reports them (its own ASR stage); a speech-to-speech engine answers from the audio and reports no words of
the user, so for it those rules had nothing to read and only the long silence ended a turn. With
``listen_asr`` in its catalogue ``defaults`` (the cascade's ``asr`` mapping: ``kind: faster-whisper`` and
that stage's arguments), the turn layer hears each pause itself, in a thread of its own beside the engine's
speculative reply, and judges those words as it judges the cascade's. The words are also the user's line of
the transcript (a ``TextOut`` with ``role="user"``), and the recogniser's run is marked ``asr_start`` /
``asr_final`` on the turn's timeline, so ``asr_ms`` means the same for every engine.

One recogniser per configuration is shared by every engine and session of the process. It runs on the
engine's CUDA device where CTranslate2 sees one, else on the CPU (CTranslate2 has no ROCm build).
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ..audio import resample, to_mono_float32
from ..load_once import once_per_process

if TYPE_CHECKING:
    from ..engines.cascade.asr import ASR, Heard

log = logging.getLogger(__name__)


def hear_turn(asr: ASR, audio: np.ndarray, rate: int, cancel: threading.Event | None = None) -> Heard:
    """``asr`` on a turn's audio at any rate and layout (made mono float32 at the recogniser's rate first): how
    the cascade and the turn layer's recogniser both hear a turn."""
    return asr.hear(resample(to_mono_float32(audio), rate, asr.sample_rate), cancel)


def check_listen_asr(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` checked as the cascade's ``asr`` mapping (known kind, arguments of the right type and range),
    coerced; else ValueError (a pydantic ValidationError naming the argument)."""
    from ..engines.cascade.settings import check_stage  # the cascade's check: one list of ASR kinds and arguments

    return check_stage("asr", config)


def listen_device(device: str) -> str:
    """``device`` when it is a CUDA device CTranslate2 can use, else ``"cpu"``."""
    if not device.startswith("cuda"):
        return "cpu"
    try:
        import ctranslate2

        return device if ctranslate2.get_cuda_device_count() > 0 else "cpu"
    except Exception:  # noqa: BLE001 - no usable CUDA runtime: the CPU it is
        return "cpu"


def _build(config_json: str, device: str, role: str) -> ASR:
    from ..engines.cascade.asr import build_asr

    recogniser = build_asr(json.loads(config_json), device)
    log.info("turn-layer recogniser (%s) loaded on %s: %s", role, device, config_json)
    return recogniser


_recognisers = once_per_process(_build)  # by configuration, device and role


def shared_recogniser(config: Mapping[str, Any], device: str = "cpu", role: str = "words") -> ASR:
    """The process's recogniser for this configuration on :func:`listen_device` of ``device``: one per ``role``
    (``words``: ``listen_asr``; ``lookback``: the second hearing), so that the two hearings of a pause never
    queue behind each other in one recogniser."""
    return _recognisers(json.dumps(dict(config), sort_keys=True), listen_device(device), role)
