"""Blind A/B tab: two anonymous engines answer the same turn; listen to both, vote, then see who was who.

Before the vote the browser only ever gets "A" / "B", reply audio (files with random names, new for every
round: :mod:`.anonymous_audio`) and generic status lines: engine names, ids, transcripts, latencies and
error messages (which name engines) are sent only with the reveal. Rounds and votes belong to the voter id
of the browser's signed cookie (:mod:`speechlm_demo.votes.voter`); without one the tab asks for a reload.
With ``?session=NAME`` the tab serves a prepared listening session instead of the mic.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import gradio as gr

from ..audio import match_level, resample
from ..compare import Comparison, SideResult, as_they_finish
from ..engines.registry import EngineRegistry
from ..plots import pair_figure
from ..recorder import RecordedTurn
from ..timeline import LATENCY_FROM, ORIGIN_LABELS
from ..votes.limits import VoteRefused
from ..votes.listening import ListeningSession, SessionError
from ..votes.pairs import NotEnoughEngines, playable_sides
from ..votes.rounds import BlindArena
from ..votes.store import StoreUnavailable
from ..votes.voter import Voter, VoterIds
from .anonymous_audio import anonymous_wav
from .recording import build_turn_input
from .text import plain

log = logging.getLogger(__name__)

MIN_LISTEN_S = 3.0
PLAYBACK_RATE = 24_000
DRAW_ATTEMPTS = 50
OUTCOME_BUTTONS = (("a", "👈 A is better"), ("b", "👉 B is better"), ("tie", "🤝 Tie"), ("both_bad", "👎 Both are bad"))
LISTEN_HINT = f"Listen to both replies (to the end, or at least {MIN_LISTEN_S:.0f} s each); voting unlocks then."
NO_VOTER = "⚠️ This browser has no voter id yet: reload the page (cookies must be allowed for this site) to take part."


@dataclass
class BlindView:
    """The tab's components that handlers update."""

    status: gr.Markdown
    audio: dict[str, gr.Audio]
    votes: list[gr.Button]
    reveal: gr.Markdown
    plot: gr.Plot
    round_id: gr.State

    def round_outputs(self) -> list[Any]:
        """Outputs of a new round, in :func:`_round_update` order."""
        return [self.status, self.audio["a"], self.audio["b"], *self.votes, self.reveal, self.plot, self.round_id]


def _votes(enabled: bool) -> list[Any]:
    # The label is sent again: an update with only ``interactive`` blanks a button's text in Gradio 5.50.
    return [gr.update(value=text, interactive=enabled) for _, text in OUTCOME_BUTTONS]


def _playable(result: SideResult | None) -> str | None:
    """The reply as the browser gets it: at one common rate and loudness, so neither gives the engine away,
    in a file whose URL is new for this round (a file path: Gradio would rescale an array to full scale)."""
    if result is None or not result.ok or not len(result.audio):
        return None
    return anonymous_wav(match_level(resample(result.audio, result.sample_rate, PLAYBACK_RATE)), PLAYBACK_RATE)


def _anonymous_state(side: str, result: SideResult | None) -> str:
    """What may be said about a side before the vote: ready, or that it could not answer (no reason)."""
    if result is None:
        return f"{side.upper()} ⏳"
    return f"{side.upper()} ✅" if result.ok and len(result.audio) else f"{side.upper()} ❌ could not answer"


def _round_update(status: str, a: SideResult | None, b: SideResult | None, round_id: Any, *, votable: bool = False) -> tuple:
    return (status, _playable(a), _playable(b), *_votes(votable), "", None, round_id)


def _after_replies(replies: Comparison) -> tuple[str, bool]:
    """The status once both replies are in, and whether voting is open straight away (nothing to hear)."""
    states = " · ".join(_anonymous_state(side, result) for side, result in replies.sides.items())
    if not playable_sides(replies):
        return f"{states}. Neither engine could answer; you can still vote (e.g. both bad).", True
    return f"{states}. {LISTEN_HINT}", False


def reveal_text(arena: BlindArena, round_id: str, voter_id: str, outcome: str, message: str) -> tuple[str, Any]:
    """After the vote: who was A and B, their latencies, words and failures; and both timelines."""
    blind = arena.get_round(round_id, voter_id)
    lines = [f"**{plain(message)}**", ""]
    records = []
    for index, side in enumerate(("a", "b")):
        entry = blind.engines[index]
        result = blind.replies.sides[side] if blind.replies else None
        latency = (
            f"voice-to-voice {result.latency_ms:.0f} ms (from {ORIGIN_LABELS[LATENCY_FROM]})"
            if result and result.latency_ms is not None else "no latency"
        )
        lines.append(f"- **{side.upper()}** was **{plain(entry.label)}** (`{entry.id}`): {latency}.")
        if result is not None:
            if not result.ok:
                lines.append(f"  - {result.status}: {plain(result.message)}")
            if result.reply_text:
                lines.append(f"  - said: “{plain(result.reply_text)}”")
            records.append((f"{side.upper()} · {entry.id}", result.timeline))
    user_text = next((r.user_text for r in (blind.replies.a, blind.replies.b) if r.user_text), "") if blind.replies else ""
    if user_text:
        lines.append(f"\nYou said: “{plain(user_text)}”")
    verdict = {"a": "A better", "b": "B better", "tie": "a tie", "both_bad": "both bad"}[outcome]
    lines.append(f"\nYour vote: {verdict}. Speak again (or draw another pair) for a new round.")
    return "\n".join(lines), pair_figure(records) if records else None


@dataclass
class _Vote:
    """The click handler of one vote button (a class, so Gradio sees the ``gr.Request`` annotation)."""

    tab: BlindTab
    outcome: str

    def __call__(self, round_id: str, request: gr.Request) -> tuple:
        return self.tab.vote(self.outcome, round_id, request)


class BlindTab:
    """The handlers of the tab, bound to the registry, the arena and the listening sessions."""

    def __init__(self, registry: EngineRegistry, arena: BlindArena, ids: VoterIds | None = None) -> None:
        self.registry = registry
        self.arena = arena
        self.ids = ids or VoterIds()
        self.rng = random.SystemRandom()

    def _voter_id(self, request: gr.Request) -> str:
        """The verified voter id of the request, or "" (nothing of a voter-less request is recorded)."""
        voter = self.ids.voter(request)
        return voter.id if voter else ""

    def live_round(self, turn: RecordedTurn | None, blind_timing: bool, request: gr.Request, previous: str = "") -> Iterator[tuple]:
        """A round on the user's recorded turn: both engines answer it at once. ``previous``: the round the page
        showed until now, dropped unless it has a vote."""
        if turn is None:
            return
        voter_id = self._voter_id(request)
        if not voter_id:
            yield _round_update(NO_VOTER, None, None, "")
            return
        self.arena.discard(previous, voter_id)
        try:
            blind = self.arena.start_round(voter_id, turn.audio, turn.sample_rate)
        except NotEnoughEngines:
            yield _round_update("⚠️ Blind A/B needs at least two engines that can run here (see the Engines tab).", None, None, "")
            return
        seen: dict[str, SideResult] = {}
        try:
            yield _round_update("Two anonymous engines are answering your turn…", None, None, blind.round_id)
            for item in as_they_finish(lambda on_result: self.arena.run_round(blind.round_id, voter_id, self.registry.get, on_result=on_result)):
                if isinstance(item, Comparison):
                    break
                seen[item[0]] = item[1]
                if not blind_timing:
                    states = " · ".join(_anonymous_state(s, seen.get(s)) for s in ("a", "b"))
                    yield _round_update(f"{states}. The other reply is still coming…", seen.get("a"), seen.get("b"), blind.round_id)
        except GeneratorExit:  # the page went away before the replies were in: nobody will vote on them
            self.arena.discard(blind.round_id, voter_id)
            raise
        except Exception:  # reported to the user, the tab goes on
            log.exception("blind round failed")
            self.arena.discard(blind.round_id, voter_id)
            yield _round_update("⚠️ This round failed; please speak again.", None, None, "")
            return
        status, votable = _after_replies(item)
        yield _round_update(status, item.a, item.b, blind.round_id, votable=votable)

    def session_round(self, name: str, request: gr.Request, previous: str = "") -> tuple:
        """A round of a listening session: a prepared prompt and two engines' stored replies. ``previous``: the
        round the page showed until now, dropped unless it has a vote."""
        voter_id = self._voter_id(request)
        if not voter_id:
            return (None, *_round_update(NO_VOTER, None, None, ""))
        self.arena.discard(previous, voter_id)
        blind = None
        try:
            listening = ListeningSession(name)
            for _ in range(DRAW_ATTEMPTS):  # a pair and question this browser has not voted on yet
                prompt = listening.draw(self.rng)
                audio, rate = listening.prompt_audio(prompt)
                blind = self.arena.start_round(voter_id, audio, rate, tag=name, among=listening.candidates(prompt))
                if not self.arena.has_voted(voter_id, blind):
                    break
                self.arena.discard(blind.round_id, voter_id)  # a rejected draw is never shown: forget it now
            else:
                return (None, *_round_update("You have voted on every pair of this session we could find. Thank you!", None, None, ""))
            replies = listening.comparison(prompt, blind.engines[0].id, blind.engines[1].id)
            self.arena.record_replies(blind.round_id, voter_id, replies)
        except (SessionError, NotEnoughEngines, OSError, ValueError) as exc:
            if blind is not None:
                self.arena.discard(blind.round_id, voter_id)
            if isinstance(exc, SessionError):
                return (None, *_round_update(f"⚠️ {plain(str(exc))}", None, None, ""))
            log.exception("listening session %s: no round", name)
            return (None, *_round_update("⚠️ This session cannot serve a round right now; see the server log.", None, None, ""))
        status, votable = _after_replies(replies)
        return ((rate, audio), *_round_update("Listen to the question first. " + status, replies.a, replies.b, blind.round_id, votable=votable))

    async def listening(self, round_id: str, side: str, request: gr.Request) -> tuple:
        """The user started playing ``side``: after the minimum listen time it counts as heard."""
        try:
            needed = self.arena.start_listening(round_id, self._voter_id(request), side)  # type: ignore[arg-type]
        except VoteRefused:
            return (gr.skip(), *[gr.skip()] * len(OUTCOME_BUTTONS))
        await asyncio.sleep(needed)
        return self.heard(round_id, side, request)

    def heard(self, round_id: str, side: str, request: gr.Request) -> tuple:
        """``side`` played long enough (or to its end) counts as heard; voting unlocks when both are."""
        try:
            complete = self.arena.mark_listened(round_id, self._voter_id(request), side)  # type: ignore[arg-type]
        except VoteRefused:
            return (gr.skip(), *[gr.skip()] * len(OUTCOME_BUTTONS))
        if complete:
            return ("Both replies heard: which one was better?", *_votes(True))
        if self.arena.get_round(round_id, self._voter_id(request)).state != "open":
            return (gr.skip(), *[gr.skip()] * len(OUTCOME_BUTTONS))  # a reply ended after the vote
        return (f"{side.upper()} heard. {LISTEN_HINT}", *[gr.skip()] * len(OUTCOME_BUTTONS))

    def vote(self, outcome: str, round_id: str, request: gr.Request) -> tuple:
        """Store the vote (or say why not), then reveal the engines."""
        voter: Voter | None = self.ids.voter(request)
        if voter is None:
            return (NO_VOTER, *_votes(False), gr.skip(), gr.skip())
        voter_id = voter.id
        if not round_id:
            return ("Speak first (or draw a pair): there is no round to vote on.", *[gr.skip()] * len(OUTCOME_BUTTONS), gr.skip(), gr.skip())
        try:
            receipt = self.arena.submit_vote(round_id, voter_id, outcome, address=voter.address)
        except VoteRefused as exc:
            votable = exc.reason in ("rate_limited", "bad_outcome")  # not heard yet, voted, gone: stay locked
            return (f"⚠️ {plain(str(exc))}", *_votes(votable), gr.skip(), gr.skip())
        except StoreUnavailable as exc:
            log.error("vote could not be kept: %s", exc)
            return ("⚠️ Your vote was NOT saved: the vote store is unavailable. Please try again later.", *_votes(True), gr.skip(), gr.skip())
        except Exception:  # noqa: BLE001 - the round is open again (submit_vote gave it back): say so, keep the page
            log.exception("vote on round %s could not be stored", round_id)
            return ("⚠️ Your vote was NOT saved: an unexpected error (logged). Please try again.", *_votes(True), gr.skip(), gr.skip())
        text, figure = reveal_text(self.arena, round_id, voter_id, outcome, receipt.message)
        return ("Revealed below.", *_votes(False), text, figure)


def session_mode(request: gr.Request) -> tuple:
    """On page load: ``?session=NAME`` switches the tab to that listening session."""
    name = (request.query_params.get("session") or "").strip() if request else ""
    if not name:
        return "", gr.update(visible=True), gr.update(visible=False), ""
    try:
        listening = ListeningSession(name)
    except SessionError as exc:
        return f"⚠️ {plain(str(exc))} Using the microphone instead.", gr.update(visible=True), gr.update(visible=False), ""
    return listening.describe(), gr.update(visible=False), gr.update(visible=True), listening.name


def build_blind_tab(demo: gr.Blocks, registry: EngineRegistry, arena: BlindArena | None) -> None:
    """Create the tab's components and wire them (call inside a ``gr.Tab`` of ``demo``)."""
    if arena is None:
        gr.Markdown("⚠️ The vote store could not be opened; see the server log. Talking and comparing work without it.")
        return
    tab = BlindTab(registry, arena)
    gr.Markdown(
        "Two engines, drawn at random, answer the same turn; you only see **A** and **B**. Speak, listen to both "
        "replies, vote, and then see who was who. Votes feed the Leaderboard."
    )
    listening_info = gr.Markdown(elem_id="blind-session")
    with gr.Column(visible=True) as live_box:
        timing = gr.Checkbox(value=True, label="Blind timing: release both replies together (speed cannot give an engine away)", elem_id="blind-timing")
        mic = build_turn_input("blind")
    with gr.Column(visible=False) as listening_box:
        draw = gr.Button("🎲 Draw a pair", variant="primary", elem_id="blind-draw")
        prompt = gr.Audio(label="Question", type="numpy", interactive=False, elem_id="blind-prompt")
    status = gr.Markdown(elem_id="blind-status")
    with gr.Row():
        audio = {side: gr.Audio(label=f"Reply {side.upper()}", type="numpy", interactive=False, elem_id=f"blind-{side}-audio") for side in ("a", "b")}
    with gr.Row():
        votes = [gr.Button(text, interactive=False, elem_id=f"blind-vote-{outcome}") for outcome, text in OUTCOME_BUTTONS]
    reveal = gr.Markdown(elem_id="blind-reveal")
    plot = gr.Plot(label="Latency timelines (after the vote)", elem_id="blind-timeline")
    view = BlindView(status, audio, votes, reveal, plot, gr.State(""))
    tag = gr.State("")
    mic.turn_id.change(tab.live_round, inputs=[mic.turn, timing, view.round_id], outputs=view.round_outputs(), show_progress="hidden", concurrency_limit=4)
    draw.click(tab.session_round, inputs=[tag, view.round_id], outputs=[prompt, *view.round_outputs()], show_progress="hidden")
    for side, player in audio.items():
        which = gr.State(side)
        listening = player.play(tab.listening, inputs=[view.round_id, which], outputs=[status, *votes], show_progress="hidden", concurrency_limit=None)
        player.pause(None, cancels=[listening])
        player.stop(tab.heard, inputs=[view.round_id, which], outputs=[status, *votes], show_progress="hidden")
    for (outcome, _), button in zip(OUTCOME_BUTTONS, votes, strict=True):
        button.click(
            _Vote(tab, outcome),
            inputs=[view.round_id],
            outputs=[status, *votes, reveal, plot],
            show_progress="minimal",  # a spinner on the status line while the vote is written (up to ~1 s if the store is locked)
            show_progress_on=[status],
            concurrency_limit=None,
        )
    demo.load(session_mode, outputs=[listening_info, live_box, listening_box, tag])
