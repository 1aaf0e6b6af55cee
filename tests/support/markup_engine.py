"""A test engine whose words are hostile markup: what the Talk tab must show as plain text, never render."""

from __future__ import annotations

from collections.abc import Iterator

from speechlm_demo.engines.base import AudioOut, ErrorEvent, Event, SessionOptions, TextOut, UserTurn
from speechlm_demo.turntaking.half_duplex import HalfDuplexEngine

HEARD = '<img src=x onerror="window.__pwned=(window.__pwned||[]).concat(1)"> <script>window.__pwned=[2]</script>'
SAID = '<iframe src="about:blank" onload="window.__pwned=[3]"></iframe> ![tracker](http://127.0.0.9/t.png) [click](javascript:alert(4)) **bold**'
ERROR = '<svg onload="window.__pwned=[5]"><a href="javascript:alert(6)">x</a></svg>'
PAYLOADS = (HEARD, SAID, ERROR)


class MarkupEngine(HalfDuplexEngine):
    """Hears, says and fails with HTML/Markdown payloads; plays the user's turn back as its reply audio."""

    def respond(self, turn: UserTurn, history: list[dict[str, str]], options: SessionOptions) -> Iterator[Event]:
        """The payloads as the user's transcript, the reply and an error; then the turn's audio."""
        yield TextOut(HEARD, role="user")
        yield TextOut(SAID, role="agent")
        yield ErrorEvent(ERROR)
        yield AudioOut(turn.audio, turn.sample_rate)
