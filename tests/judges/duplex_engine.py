"""A frame-synchronous full-duplex test engine whose turn-taking is known exactly.

For every 20 ms input frame it plays one 20 ms output frame (a tone while it speaks, else silence):
after ``backchannel_after_s`` of continuous user voice it says a 0.4 s "mm-hm" (once per stretch of voice);
after ``respond_after_s`` of silence following user voice it speaks ``reply_s``; while it speaks, user voice
for ``yield_after_s`` makes it stop at once.
"""

from __future__ import annotations

import numpy as np

from speechlm_demo.catalog import EngineEntry
from speechlm_demo.engines.base import AudioOut, Emit, Engine, EngineSession, EngineSettings, SessionOptions

FRAME = 320
VOICE_RMS = 0.01


def duplex_entry(**defaults: float) -> EngineEntry:
    return EngineEntry.model_validate(
        {
            "id": "scripted-duplex",
            "label": "Scripted duplex",
            "family": "diagnostic",
            "duplex": "full",
            "class": "tests.judges.duplex_engine:ScriptedDuplexEngine",
            "accelerators": ["cpu"],
            "licence": "MIT",
            "defaults": defaults,
        }
    )


class ScriptedDuplexSettings(EngineSettings):
    respond_after_s: float = 0.5
    reply_s: float = 2.0
    yield_after_s: float = 0.1
    backchannel_after_s: float = 1.0


class ScriptedDuplexEngine(Engine):
    Settings = ScriptedDuplexSettings

    def open_session(self, options: SessionOptions, emit: Emit) -> EngineSession:
        return _Session(self, options, emit)


class _Session(EngineSession):
    def __init__(self, engine: Engine, options: SessionOptions, emit: Emit) -> None:
        super().__init__(engine, options, emit)
        settings = engine.settings
        self.respond_after = settings.respond_after_s
        self.reply_s = settings.reply_s
        self.yield_after = settings.yield_after_s
        self.backchannel_after = settings.backchannel_after_s
        self.pending = np.zeros(0, np.float32)
        self.voice_run = self.silence_run = 0.0
        self.heard_user = self.backchannelled = False
        self.speaking_left = 0.0  # seconds of reply (or backchannel) still to play
        self.in_reply = False
        self.step = FRAME / 16_000
        self.phase = 0

    def _push(self, pcm: np.ndarray) -> None:
        self.pending = np.concatenate([self.pending, pcm])
        while len(self.pending) >= FRAME:
            frame, self.pending = self.pending[:FRAME], self.pending[FRAME:]
            self._frame(float(np.sqrt(np.mean(frame**2))) > VOICE_RMS)

    def _frame(self, voiced: bool) -> None:
        if voiced:
            self.voice_run += self.step
            self.silence_run = 0.0
            self.heard_user = True
        else:
            self.silence_run += self.step
            self.voice_run = 0.0
            self.backchannelled = False
        if self.in_reply and self.voice_run >= self.yield_after - 1e-9:
            self.speaking_left, self.in_reply = 0.0, False  # interrupted: yield the floor
        if not self.speaking_left and self.heard_user and self.silence_run >= self.respond_after - 1e-9:
            self.speaking_left, self.in_reply, self.heard_user = self.reply_s, True, False
        if not self.speaking_left and not self.backchannelled and self.voice_run >= self.backchannel_after - 1e-9:
            self.speaking_left, self.backchannelled = 0.4, True
        out = np.zeros(FRAME, np.float32)
        if self.speaking_left > 1e-9:
            t = (self.phase + np.arange(FRAME)) / 16_000
            out = (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
            self.speaking_left = max(0.0, self.speaking_left - self.step)
            if not self.speaking_left:
                self.in_reply = False
        self.phase += FRAME
        self.emit(AudioOut(out, 16_000))

    def close(self) -> None:
        self.pending = np.zeros(0, np.float32)
