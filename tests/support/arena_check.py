"""Real-browser checks of the Compare and Blind A/B tabs: headless Chromium, a WAV as the microphone.

Runs inside a loopback-only network namespace; prints one JSON line with what the page showed.
Usage: python -m tests.support.arena_check --wav FILE --tab compare|blind|session [--engines LABEL_A,LABEL_B]
       [--default-engine ID] [--catalog FILE] [--forbidden a,b,...] [--session NAME] [--screenshot PNG]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from playwright.sync_api import Page

from tests.support.app_process import running_app
from tests.support.browser_check import chromium_page, start_microphone

PAYLOAD_JS = Path(__file__).with_name("payload_probe.js")
CASCADE_LABEL = "Offline cascade (Silero VAD + Whisper base + SmolLM2-135M + Piper)"


def wait_for_text(page: Page, selector: str, needle: str, timeout_s: float) -> str:
    """Poll an element's text until it contains ``needle``; returns the last text seen."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = page.locator(selector).inner_text()
        if needle in text:
            return text
        page.wait_for_timeout(250)
    return text


def judge_table(page: Page, timeout_s: float) -> str:
    """The Compare tab's judge table once it is filled in and no longer being computed ("" if it never is)."""
    deadline = time.monotonic() + timeout_s
    text = ""
    while time.monotonic() < deadline:
        text = page.locator("#compare-judges").inner_text()
        if "words/min" in text and "processing" not in text:
            return text
        page.wait_for_timeout(250)
    return text


def check_compare(page: Page, engines: list[str], timeout_s: float) -> dict:
    """Record one turn in the Compare tab and read both sides."""
    page.get_by_role("tab", name="Compare").click()
    for side, engine in zip("ab", engines, strict=True):
        dropdown = page.locator(f"#compare-engine-{side} input")
        dropdown.click()
        dropdown.fill("")
        page.locator(f"#compare-engine-{side}").get_by_role("option", name=engine, exact=True).click()
    start_microphone(page, "compare")
    status = wait_for_text(page, "#compare-status", "Done", timeout_s)
    result = {"status": status}
    for side in "ab":  # the page may still be painting the last update when the status reads "Done"
        result[f"summary_{side}"] = wait_for_text(page, f"#compare-{side}-summary", "voice-to-voice", 15)
        result[f"heard_{side}"] = page.locator(f"#compare-{side}-heard textarea").input_value()
        result[f"reply_{side}"] = page.locator(f"#compare-{side}-reply textarea").input_value()
        result[f"has_audio_{side}"] = page.locator(f"#compare-{side}-audio audio, #compare-{side}-audio button[aria-label='Play']").count() > 0
    result["has_timeline_plot"] = page.locator("#compare-timeline img, #compare-timeline svg").count() > 0
    result["judges"] = judge_table(page, 90)  # the judges load on first use
    return result


def compare_arguments(timeout_s: float = 120.0) -> argparse.Namespace:
    """``--wav FILE [--screenshot PNG] [--timeout S]``: the command line of a Compare-tab check script."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--screenshot")
    parser.add_argument("--timeout", type=float, default=timeout_s)
    return parser.parse_args()


def compare_with_cascade(engine: str, args: argparse.Namespace) -> dict:
    """Start the app (in this namespace), compare ``engine`` (side A) with the offline cascade (B) in Chromium."""
    with running_app("cascade") as url, chromium_page(args.wav, PAYLOAD_JS, height=1000) as page:
        page.goto(url)
        result = check_compare(page, [engine, CASCADE_LABEL], args.timeout)
        if args.screenshot:
            page.screenshot(path=args.screenshot, full_page=True)
    return result


def identity_leaks(page: Page, forbidden: list[str]) -> list[str]:
    """Engine names/ids found in the blind tab's text or in anything the server sent since capture began."""
    panel = page.locator("#blind-status").inner_text() + page.locator("#blind-reveal").inner_text()
    payloads = page.evaluate("window.__payloads")
    haystacks = {"blind tab": panel, "urls": " ".join(payloads["urls"]), "payloads": " ".join(payloads["texts"])}
    return [f"{needle!r} in {where}" for needle in forbidden for where, text in haystacks.items() if needle.lower() in text.lower()]


def listen_to_both(page: Page, timeout_s: float = 20.0, again_after_s: float = 6.0) -> bool:
    """Press play on both replies; wait until the vote unlocks (returns whether it did). As a person would,
    press play again on a reply that is not playing if the vote is still locked after ``again_after_s`` (on a
    busy machine a press can come before the player has loaded its audio, and is lost)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not page.locator("#blind-vote-a").is_enabled():
        for side in "ab":
            play = page.locator(f"#blind-{side}-audio button[aria-label='Play']")
            if play.count():
                play.first.click()
        again = min(deadline, time.monotonic() + again_after_s)
        while time.monotonic() < again and not page.locator("#blind-vote-a").is_enabled():
            page.wait_for_timeout(250)
    return page.locator("#blind-vote-a").is_enabled()


def check_blind(page: Page, forbidden: list[str], timeout_s: float) -> dict:
    """Play one blind round: speak, listen to both, vote A, read the reveal; check nothing leaked before."""
    page.get_by_role("tab", name="Blind A/B").click()
    page.evaluate("window.__capture = true")
    start_microphone(page, "blind")
    result: dict = {"status_ready": wait_for_text(page, "#blind-status", "Listen to both", timeout_s)}
    result["votable_before_listening"] = page.locator("#blind-vote-a").is_enabled()
    result["payload_count"] = len(page.evaluate("window.__payloads")["texts"])
    result["leaks_before_vote"] = identity_leaks(page, forbidden)
    result["votable_after_listening"] = listen_to_both(page)
    page.locator("#blind-vote-a").click()
    result["reveal"] = wait_for_text(page, "#blind-reveal", "was", 20)
    page.wait_for_timeout(4000)  # replies still playing end after the vote: that must not unlock the buttons
    result["votable_after_vote"] = page.locator("#blind-vote-b").is_enabled()
    result["payload_has_status"] = any("Listen to both" in text for text in page.evaluate("window.__payloads")["texts"])
    result["leaks_after_vote"] = identity_leaks(page, forbidden)  # the probe does see names once they are sent
    return result


def check_session(page: Page, url: str, name: str, forbidden: list[str]) -> dict:
    """Open ``/?session=NAME``, draw a pair of prepared replies, listen, vote tie, read the reveal."""
    page.goto(f"{url}/?session={name}")
    page.get_by_role("tab", name="Blind A/B").click()
    result: dict = {"session_info": wait_for_text(page, "#blind-session", name, 30)}
    result["mic_visible"] = page.locator("#blind-webrtc").is_visible()
    page.evaluate("window.__capture = true")
    page.locator("#blind-draw").click()
    result["status_ready"] = wait_for_text(page, "#blind-status", "Listen to both", 30)
    result["has_question"] = page.locator("#blind-prompt button[aria-label='Play']").count() > 0
    result["leaks_before_vote"] = identity_leaks(page, forbidden)
    listen_to_both(page)
    page.locator("#blind-vote-tie").click()
    result["reveal"] = wait_for_text(page, "#blind-reveal", "was", 20)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--wav", required=True)
    parser.add_argument("--tab", choices=["compare", "blind", "session"], required=True)
    parser.add_argument("--session", help="session: the listening session to open")
    parser.add_argument("--engines", default="echo,cascade", help="compare: engine labels A,B as shown in the dropdown")
    parser.add_argument("--default-engine", default="echo")
    parser.add_argument("--catalog")
    parser.add_argument("--timeout", type=float, default=90.0)
    parser.add_argument("--screenshot")
    parser.add_argument("--forbidden", default="", help="blind: comma-separated strings that must not leak before the vote")
    args = parser.parse_args()
    with running_app(args.default_engine, catalog=args.catalog) as url, chromium_page(args.wav, PAYLOAD_JS, height=1000) as page:
        forbidden = [f for f in args.forbidden.split(",") if f]
        if args.tab == "session":
            result = check_session(page, url, args.session, forbidden)
        elif args.tab == "compare":
            page.goto(url)
            result = check_compare(page, args.engines.split(","), args.timeout)
        else:
            page.goto(url)
            result = check_blind(page, forbidden, args.timeout)
        if args.screenshot:
            page.screenshot(path=args.screenshot, full_page=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
