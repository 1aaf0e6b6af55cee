"""The vote subcommands of ``python -m speechlm_demo``: ``votes export``, ``leaderboard``, ``bench-votes``,
``session prepare|list`` (listening sessions)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import TYPE_CHECKING

from ..cli_types import (
    at_least_two,
    non_negative_float,
    non_negative_int,
    output_file,
    output_folder,
    positive_float,
    positive_int,
)
from ..output_paths import write_json_report

if TYPE_CHECKING:
    from .store import VoteStore

COMMANDS = ("votes", "leaderboard", "bench-votes", "session")


class Terminated(BaseException):
    """SIGTERM arrived; a BaseException so that no ``except Exception`` on the way swallows it."""


def _terminate(signum: int, frame: object) -> None:
    raise Terminated


def register(sub: argparse._SubParsersAction) -> None:
    """Add the subcommands to the CLI's subparsers."""
    votes = sub.add_parser("votes", help="the blind-vote store")
    votes_sub = votes.add_subparsers(dest="votes_command", required=True)
    export = votes_sub.add_parser("export", help="write every vote to CSV and/or Parquet (with identity_leak and outlier_voter columns)")
    export.add_argument("--csv", type=output_file, help="CSV file to write")
    export.add_argument("--parquet", type=output_file, help="Parquet file to write")
    export.add_argument("--db", help="SQLAlchemy URL (default $SPEECHLM_DB_URL or SQLite in $SPEECHLM_DATA_DIR)")
    board = sub.add_parser("leaderboard", help="Bradley-Terry ratings with bootstrap 95 %% intervals from the votes")
    board.add_argument("--json", action="store_true", help="machine-readable output")
    board.add_argument("--rounds", type=positive_int, default=1000, help="bootstrap rounds (at least 1)")
    board.add_argument("--min-votes", type=non_negative_int, default=30, help="below this an engine is 'preliminary'")
    board.add_argument("--db", help="SQLAlchemy URL")
    board.add_argument("--tag", default="", help="only the votes of this listening session")
    board.add_argument("--style-rounds", type=positive_int, default=200, help="bootstrap rounds of the style-controlled fit (at least 1)")
    board.add_argument("--exclude-outliers", action="store_true", help="leave out the votes of flagged outlier voters")
    board.add_argument("--plots", type=output_folder, help="write judges_by_engine.png and rating_vs_latency.png into this folder")
    bench = sub.add_parser("bench-votes", help="measure ratings time and concurrent vote-write latency")
    bench.add_argument("--votes", type=positive_int, default=100_000)
    bench.add_argument("--rounds", type=positive_int, default=1000)
    bench.add_argument("--engines", type=at_least_two, default=10, help="at least 2")
    bench.add_argument("--voters", type=positive_int, default=50)
    bench.add_argument("--votes-per-voter", type=positive_int, default=20)
    bench.add_argument("--think", type=non_negative_float, default=0.25, help="mean seconds a voter waits between votes")
    bench.add_argument("--json", type=output_file, help="write the report here")
    session = sub.add_parser("session", help="listening sessions: blind A/B on replies generated ahead of time")
    session_sub = session.add_subparsers(dest="session_command", required=True)
    prepare = session_sub.add_parser("prepare", help="generate every engine's reply to every prompt WAV")
    prepare.add_argument("--prompts", required=True, help="folder of WAVs (+ optional NAME.txt reference text)")
    prepare.add_argument("--engines", required=True, help="comma-separated catalogue ids (at least two)")
    prepare.add_argument("--name", required=True, help="session name; served at the app's ?session=NAME")
    prepare.add_argument("--timeout", type=positive_float, default=60.0, help="seconds an engine may take per reply")
    prepare.add_argument("--max-prompt", type=positive_float, default=60.0, help="prompts longer than this many seconds are cut")
    prepare.add_argument("--catalog", help="catalogue file")
    prepare.add_argument("--replace", action="store_true", help="replace the session of that name (its replies; votes already cast keep their tag)")
    session_sub.add_parser("list", help="the prepared sessions (those that cannot be opened are marked unreadable)")


def _session_line(name: str) -> str:
    """``name``, marked unreadable (with the reason) when the session cannot be opened."""
    from .listening import ListeningSession, SessionError

    try:
        ListeningSession(name)
    except SessionError as exc:
        return f"{name}\tunreadable: {exc}"
    return name


def _session(args: argparse.Namespace) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from ..catalog import CatalogError, load_catalog
    from ..engines.registry import EngineRegistry
    from ..hardware import probe
    from .listening import SessionError, list_sessions, prepare

    if args.session_command == "list":
        sys.stdout.write("".join(f"{_session_line(name)}\n" for name in list_sessions()) or "no listening sessions yet\n")
        return 0
    engine_ids = [e.strip() for e in args.engines.split(",") if e.strip()]
    try:
        registry = EngineRegistry(load_catalog(args.catalog), probe())
    except CatalogError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    previous = signal.signal(signal.SIGTERM, _terminate)  # so that the staging folder is removed on the way out
    try:
        with tqdm(desc=args.name, unit="reply", file=sys.stderr) as bar:

            def advance(done: int, total: int, text: str) -> None:
                bar.total = total
                bar.set_postfix_str(text)
                bar.update(done - bar.n)

            folder = prepare(
                registry,
                Path(args.prompts),
                engine_ids,
                args.name,
                timeout_s=args.timeout,
                max_prompt_s=args.max_prompt,
                progress=advance,
                replace=args.replace,
            )
    except SessionError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except Terminated:
        sys.stderr.write("error: stopped by SIGTERM; the session was not written\n")
        return 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        registry.close()
    sys.stdout.write(f"wrote {folder}; open the app at /?session={args.name}\n")
    return 0


def run(args: argparse.Namespace) -> int:
    """Run one of :data:`COMMANDS`; returns the exit status."""
    if args.command == "session":
        return _session(args)
    if args.command == "bench-votes":

        from ..benchmarks.vote_backend import bench_ratings, bench_writes, format_report

        report = {
            "ratings": bench_ratings(args.votes, args.engines, args.rounds),
            "writes": bench_writes(args.voters, args.votes_per_voter, args.think),
            "saturation": bench_writes(args.voters, args.votes_per_voter, 0.0),
        }
        sys.stdout.write(format_report(report) + "\n")
        if args.json and not write_json_report(args.json, report):
            return 2
        return 0 if report["ratings"]["ok"] and report["writes"]["ok"] else 1
    from .store import DATA_DIR_ENV, DB_URL_ENV, StoreError, StoreMissing, VoteStore

    try:
        store = VoteStore(args.db, create=False)  # reading: a store that is not there is an error, not made empty
    except StoreMissing as exc:
        hint = "" if args.db or os.environ.get(DB_URL_ENV) else f"; set {DATA_DIR_ENV} to the folder holding votes.sqlite3, or give --db URL"
        sys.stderr.write(f"error: {exc}{hint}\n")
        return 2
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    try:
        return _read(args, store)
    except OSError as exc:  # an output file or folder that went bad while the votes were read
        sys.stderr.write(f"error: {exc}\n")
        return 2
    except StoreError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    finally:
        store.close()


def _read(args: argparse.Namespace, store: VoteStore) -> int:
    """``votes export`` or ``leaderboard`` on an open store."""
    from ..judges.records import read_judgements
    from .integrity import annotate

    if args.command == "votes":
        if not (args.csv or args.parquet):
            sys.stderr.write("error: give --csv and/or --parquet\n")
            return 2
        frame = annotate(store.frame(), read_judgements(store))  # every vote, with its leak and outlier flags
        if args.csv:
            frame.to_csv(args.csv, index=False)
        if args.parquet:
            frame.to_parquet(args.parquet, index=False)
        sys.stdout.write(f"exported {len(frame)} votes from {store.describe()}\n")
        return 0
    from .board import build_board, vote_columns

    votes = store.frame(vote_columns(), tag=args.tag or None)
    if args.tag and votes.empty:
        tags = store.tags()
        there = ", ".join(f"{tag!r} ({count})" if tag else f"untagged ({count})" for tag, count in tags.items()) or "none: the store has no votes yet"
        sys.stderr.write(f"error: no votes carry the tag {args.tag!r}; the tags there are: {there}\n")
        return 2
    board = build_board(
        votes, read_judgements(store), rounds=args.rounds, style_rounds=args.style_rounds, min_votes=args.min_votes, exclude_outliers=args.exclude_outliers
    )
    sys.stdout.write(json.dumps(board.to_dict(), indent=2) + "\n" if args.json else board.format() + "\n")
    if args.plots:
        from pathlib import Path

        from ..judges.plots import write_pngs

        for path in write_pngs(board.table(), board.raw.latency, board.judged, Path(args.plots)):
            sys.stderr.write(f"wrote {path}\n")
    return 0
