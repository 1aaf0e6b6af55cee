"""Command line: ``python -m speechlm_demo run | engines ...``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .catalog import CatalogError, engine_table_rows, experimental_enabled, load_catalog, offered
from .hardware import probe, simulated_host


def _engines(args: argparse.Namespace) -> int:
    try:
        catalog = load_catalog(args.catalog)
        host = simulated_host(args.host) if args.host else probe()
    except (CatalogError, ValueError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    decisions = offered(catalog, host, allow_experimental=args.experimental or experimental_enabled())
    if args.json:
        json.dump([d.to_dict() for d in decisions], sys.stdout, indent=2)
        sys.stdout.write("\n")
        return 0
    rows = engine_table_rows(decisions)
    sys.stdout.write(f"Host: {host.describe()}\n\n")
    if args.markdown:
        sys.stdout.write(_markdown(rows))
    else:
        import pandas as pd

        sys.stdout.write(pd.DataFrame(rows).to_string(index=False) + "\n")
    return 0


def _markdown(rows: list[dict[str, str]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]).replace("|", "/") for h in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _run(args: argparse.Namespace, rest: list[str]) -> int:
    from .server import create_demo, parse_app_args, serve

    config = parse_app_args(rest)
    demo, registry = create_demo(config)
    serve(demo, registry, config)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    parser = argparse.ArgumentParser(prog="python -m speechlm_demo", description="SpeechLM Playground tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the app (same flags as app.py)", add_help=False)
    engines = sub.add_parser("engines", help="list catalogue engines and whether this host offers them")
    engines.add_argument("--json", action="store_true", help="machine-readable output")
    engines.add_argument("--markdown", action="store_true", help="a Markdown table (for the README)")
    engines.add_argument("--host", help="simulate a host: cpu, mps, cuda:GB, rocm:GB")
    engines.add_argument("--catalog", help="catalogue file (default configs/engines.yaml)")
    engines.add_argument("--experimental", action="store_true", help="offer experimental accelerators")
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        return _run(args, rest)
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    return _engines(args)
