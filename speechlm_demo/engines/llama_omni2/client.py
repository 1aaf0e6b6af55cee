"""LLaMA-Omni2 through its controller (or one model worker): text always, speech when a unit vocoder is set.

Per turn: the turn is written as a 16 kHz WAV into ``audio_dir`` (a folder the worker can read under
``worker_audio_dir``: the same machine, or a shared mount); the request's ``history`` is the earlier turns
as the worker reads them (user audio path, assistant text, assistant audio placeholder: it takes every
third entry by position) plus this turn. The reply's cumulative text and units arrive in NUL-delimited
frames (:mod:`.protocol`); units become audio through :mod:`.vocoder` when ``unit_decoder`` is set, else
the reply is text only (said once per session, and in the catalogue note).
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import httpx
from pydantic import Field

from ..base import AudioOut, Event, Progress, SessionOptions, TextOut, UserTurn
from ..fallback import ServerEngine
from ..server_client import (
    ServerFailure,
    ServerSettings,
    reply_chunks,
    reply_format,
    text_events,
    turn_wav,
)
from .protocol import ERROR_CODES, FrameReader, check_units
from .vocoder import SAMPLE_RATE, UnitVocoder, load_vocoder

log = logging.getLogger(__name__)


class LlamaOmni2Settings(ServerSettings):
    """Catalogue ``defaults`` of a LLaMA-Omni2 entry."""

    url_env: str = "LLAMA_OMNI2_URL"
    model: str = Field("LLaMA-Omni2-7B-Bilingual", description="the --model-name the worker registered")
    via_controller: bool = Field(True, description="the URL is the controller (else one model worker)")
    audio_dir: str = Field("", description="where turns are written ('' = a temporary folder)")
    worker_audio_dir: str = Field("", description="audio_dir as the worker sees it ('' = the same path)")
    temperature: float = Field(0.0, ge=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(512, ge=1, le=1024)  # the worker caps at 1024
    history_turns: int = Field(3, ge=0)
    unit_decoder: str = Field("", description="'' (text only), 'cosyvoice2' or 'module:factory'")
    unit_decoder_dir: str = Field("", description="the ICTNLP/cosy2_decoder folder")
    prompt_wav: str = Field("", description="a 16 kHz WAV whose voice the decoder imitates")


class LlamaOmni2Engine(ServerEngine):
    """Streams LLaMA-Omni2's reply; decodes its units locally when a vocoder is configured."""

    Settings = LlamaOmni2Settings
    settings: LlamaOmni2Settings
    vocoder: UnitVocoder | None = None
    audio_dir: Path | None = None  # where turns are written (set on connect)
    _own_dir = False  # audio_dir is a temporary folder of this engine's

    def connect(self, progress: Progress) -> None:
        """Check the controller lists the model (or the worker answers)."""
        self.base_url = self.settings.server_url(self.entry.label)
        self._prepare_audio_dir()
        if self.settings.unit_decoder and self.vocoder is None:
            progress(0.1, "loading the unit decoder")
            self.vocoder = load_vocoder(self.settings.unit_decoder, self.settings.unit_decoder_dir, self.settings.prompt_wav, self.device)
        progress(0.5, f"asking {self.base_url} for {self.settings.model}")
        models = self._served_models()
        if self.settings.model not in models:
            raise ServerFailure(f"{self.entry.label}: the server serves {models or 'no model'}, not {self.settings.model!r}")

    def _served_models(self) -> list[str]:
        """The model names the controller lists (``models``) or the worker registered (``model_names``)."""
        path, key = ("/list_models", "models") if self.settings.via_controller else ("/worker_get_status", "model_names")
        where = f"{self.entry.label} at {self.base_url}"
        try:
            reply = httpx.post(self.base_url + path, timeout=self.settings.connect_timeout_s)
            reply.raise_for_status()
            body = reply.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ServerFailure(f"{where} does not answer {path}: {exc}") from exc
        models = body.get(key) if isinstance(body, dict) else None
        if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
            raise ServerFailure(f"{where} answered {path} without a list of model names in {key!r}: {reply.text[:100]!r}")
        return models

    def _prepare_audio_dir(self) -> None:
        if self.audio_dir is not None:
            return
        if self.settings.audio_dir:
            self.audio_dir = Path(self.settings.audio_dir)
            self.audio_dir.mkdir(parents=True, exist_ok=True)
            self._own_dir = False
        else:
            self.audio_dir = Path(tempfile.mkdtemp(prefix="llama-omni2-turns-"))
            self._own_dir = True

    def close(self) -> None:
        """Remove the turn files this engine wrote into its own temporary folder."""
        if self._own_dir and self.audio_dir is not None:
            shutil.rmtree(self.audio_dir, ignore_errors=True)
        self.audio_dir, self._own_dir = None, False
        self.loaded = False

    def _worker_path(self, local: Path) -> str:
        if not self.settings.worker_audio_dir:
            return str(local)
        return str(Path(self.settings.worker_audio_dir) / local.name)

    def respond_remote(self, turn: UserTurn, history: list[dict], options: SessionOptions) -> Iterator[Event]:
        """Stream the reply to ``turn``."""
        assert self.audio_dir is not None, "connect() prepares the audio folder"
        wav = self.audio_dir / f"turn-{uuid.uuid4().hex}.wav"
        wav.write_bytes(turn_wav(turn.audio, turn.sample_rate))
        payload = {
            "model": self.settings.model,
            "history": [*self._worker_history(history), {"role": "user", "content": {"path": self._worker_path(wav)}}],
            "temperature": self.settings.temperature,
            "top_p": self.settings.top_p,
            "max_new_tokens": self.settings.max_new_tokens,
        }
        if self.vocoder is None:
            yield from self.note_once(options, "no unit decoder is set up here, so its replies are text only (see the catalogue note).")
        text = yield from self._stream(payload, turn)
        if turn.cancel.is_set():
            return
        if not text.strip():
            raise ServerFailure(f"{self.entry.label} finished without a reply")
        yield TextOut(text.strip(), "agent")
        history.append({"role": "user", "content": "", "audio_path": self._worker_path(wav)})
        history.append({"role": "assistant", "content": text.strip()})

    def _worker_history(self, history: list[dict]) -> list[dict]:
        entries: list[dict] = []
        pairs = [(u, a) for u, a in zip(history[::2], history[1::2]) if u.get("audio_path") and a.get("role") == "assistant"]
        for user, assistant in pairs[-self.settings.history_turns :] if self.settings.history_turns else []:
            entries.append({"role": "user", "content": {"path": user["audio_path"]}})
            entries.append({"role": "assistant", "content": assistant["content"]})
            entries.append({"role": "assistant", "content": {"path": "", "type": "audio/wav"}})  # skipped by the worker
        return entries

    def _stream(self, payload: dict, turn: UserTurn) -> Iterator[Event]:
        label = self.entry.label
        reader = FrameReader()
        text, units_done = "", 0
        state = self.vocoder.start() if self.vocoder is not None else None
        chunks = reply_chunks(self.base_url + "/worker_generate_stream", payload, self.settings, label, turn.cancel)
        with closing(chunks), reply_format(label):
            for chunk in chunks:
                for frame in reader.feed(chunk):
                    if frame.error_code:
                        why = ERROR_CODES.get(frame.error_code, "unknown error")
                        raise ServerFailure(f"{label} failed the turn (error_code {frame.error_code}: {why}): {frame.text}")
                    yield from text_events(text, frame.text)
                    text = frame.text
                    if self.vocoder is not None and (len(frame.units) > units_done or frame.finalize):
                        units = check_units(frame.units[units_done:], self.vocoder.codes)
                        audio, state = self.vocoder.feed(units, state, frame.finalize)
                        units_done = len(frame.units)
                        if len(audio):
                            yield AudioOut(audio, SAMPLE_RATE)
                    if frame.finalize:
                        return text
        if reader.pending and not turn.cancel.is_set():
            raise ServerFailure(f"{label} broke off in the middle of a frame")
        return text
