"""The WebRTC offer route in front of FastRTC's ``Stream.offer``: bad offers are refused and leave nothing behind.

FastRTC 0.0.34 (``webrtc_connection_mixin.py``, ``handle_offer``) stores the new ``RTCPeerConnection`` in
``stream.pcs`` (which its concurrency limit counts) and the handler in ``stream.handlers`` *before*
``setRemoteDescription``; when that raises (an SDP without ICE credentials, no common codec, ...) the request
fails with a 500 and the peer stays stored for ever (its 30 s clean-up task is only started afterwards), so a
few bad offers use up every session slot. Here the message type and the SDP are checked first (400), and when
FastRTC's offer raises anyway, the peer it stored is removed and closed and the client gets a JSON error.

The page's own microphones do not post to that route: FastRTC's ``WebRTC`` component sends its offers through
Gradio's ``/gradio_api/component_server`` (the ``offer`` server function), to the same ``handle_offer``. The
app's microphones are therefore wrapped by :func:`guard_offers`: their ``offer`` goes through the same checks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from aiortc import sdp
from aiortc.exceptions import InvalidAccessError, InvalidStateError, OperationError
from fastapi.responses import JSONResponse
from fastrtc import Stream, WebRTC
from fastrtc.stream import Body
from gradio.components.base import server
from pydantic import ValidationError

log = logging.getLogger(__name__)

MESSAGE_TYPES = ("offer", "ice-candidate")  # what FastRTC's clients send to this route
MAX_SDP_CHARS = 65_536  # a browser's offer is a few kB
CLIENT_FAULTS = (ValueError, OperationError, InvalidStateError, InvalidAccessError)  # aiortc on a bad remote SDP


def refusal(status: int, error: str, message: str) -> JSONResponse:
    """FastRTC's failure shape (``status``/``meta.error``) with a readable ``meta.message``."""
    return JSONResponse(status_code=status, content={"status": "failed", "meta": {"error": error, "message": message}})


def offer_problem(body: Body) -> str | None:
    """Why ``body`` cannot be an offer FastRTC could answer, or None if it may be."""
    if body.type not in MESSAGE_TYPES:
        return f"unsupported message type {body.type[:40]!r}; expected one of {', '.join(MESSAGE_TYPES)}"
    if body.type == "ice-candidate":
        return None if body.candidate is not None else "an ice-candidate message needs a candidate"
    if not body.sdp or not body.sdp.strip():
        return "the offer has no SDP"
    if len(body.sdp) > MAX_SDP_CHARS:
        return f"the SDP is too long ({len(body.sdp)} characters; at most {MAX_SDP_CHARS})"
    try:
        description = sdp.SessionDescription.parse(body.sdp)
    except Exception:  # noqa: BLE001 - aiortc's parser raises whatever the text trips it with
        return "the SDP could not be parsed"
    if not any(media.kind == "audio" for media in description.media):
        return "the SDP offers no audio"
    return None


class Peers(Protocol):
    """What FastRTC's ``Stream`` and ``WebRTC`` component share (``WebRTCConnectionMixin``): the peers by id."""

    pcs: dict[str, Any]

    def clean_up(self, webrtc_id: str) -> Any: ...


async def answer_checked(
    peers: Peers, body: Body, answer: Callable[[Body], Awaitable[Any]], *, status: int | None = None
) -> Any:
    """``answer(body)`` (FastRTC's offer) behind the checks above, cleaning up after it on failure. A refusal
    has HTTP status 400 (the client's fault) or 500, or ``status`` for every refusal when given."""
    problem = offer_problem(body)
    if problem is not None:
        log.warning("refused a WebRTC %s message: %s", body.type[:40], problem)
        return refusal(status or 400, "bad_offer", problem)
    if body.type == "offer" and body.webrtc_id in peers.pcs:  # never let a second offer replace a peer
        return refusal(200, "connection_already_exists", "a connection with this webrtc_id already exists")
    try:
        return await answer(body)
    except Exception as exc:  # whatever failed, the peer this offer stored must not keep its slot
        if body.type == "offer":  # a failed ice-candidate must not close the id's working peer
            await discard_peer(peers, body.webrtc_id)
        if isinstance(exc, CLIENT_FAULTS):
            log.warning("refused a WebRTC offer: %s: %s", type(exc).__name__, exc)
            return refusal(status or 400, "bad_offer", f"the offer was refused: {exc}")
        log.exception("answering a WebRTC offer failed")
        return refusal(status or 500, "offer_failed", f"the server could not answer the offer: {type(exc).__name__}: {exc}")


def guarded_offer(stream: Stream) -> Callable[[Body], Awaitable[Any]]:
    """The ``/rtc/webrtc/offer`` route handler: :meth:`fastrtc.Stream.offer` behind the checks."""

    async def offer(body: Body) -> Any:
        return await answer_checked(stream, body, stream.offer)

    return offer


def guard_offers(component: WebRTC) -> WebRTC:
    """``component`` (FastRTC's WebRTC, a microphone of the page) with its offers behind the same checks: the page
    posts them to Gradio's ``component_server``, which calls the component's ``offer`` server function with
    whatever JSON a client sent. Its own attribute, so FastRTC's class (and its front end) stays as it is.
    Refusals come with HTTP status 200, as FastRTC's own: Gradio's client drops the body of any other status,
    and only a ``"status": "failed"`` body makes the page say that the connection failed. Read from gradio 5.50
    (``routes.py``, ``component_server``; the client's ``component_server`` call) and fastrtc 0.0.34
    (``webrtc.py``, ``WebRTC.offer``; ``templates/component/index-*.js``, its offer's failure callback)."""
    answer = component.offer

    @server
    async def offer(body: Any) -> Any:
        try:
            message = Body.model_validate(body)
        except ValidationError as exc:
            problem = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
            log.warning("refused a WebRTC message: %s", problem)
            return refusal(200, "bad_offer", f"not a WebRTC message: {problem}")
        return await answer_checked(component, message, lambda checked: answer(checked.model_dump()), status=200)

    component.offer = offer  # type: ignore[method-assign]
    return component


async def discard_peer(peers: Peers, webrtc_id: str) -> None:
    """Forget what FastRTC stored for ``webrtc_id`` (peer, handler, tracks, outputs) and close its peer."""
    pc = peers.pcs.get(webrtc_id)
    for connection in peers.clean_up(webrtc_id):  # shuts the handlers down and drops every entry of the id
        connection.stop()
    if pc is not None:
        await pc.close()
