"""Command line: ``python -m speechlm_demo run | engines ...``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from .catalog import CatalogError, engine_table_rows, experimental_enabled, load_catalog, offered
from .cli_types import non_negative_float, output_file, plot_file, positive_float, positive_int
from .env_settings import drop_unreadable_gradio_port
from .hardware import probe, simulated_host
from .interrupt import unwind_on_interrupt
from .votes import commands as votes_commands

log = logging.getLogger(__name__)


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


def _seed(text: str) -> int | None:
    """``bench --seed``: a whole number, or ``none``."""
    if text.strip().lower() == "none":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number or 'none', not {text!r}") from None


def _bench(args: argparse.Namespace) -> int:
    from pathlib import Path

    from .benchmarks import latency as bench
    from .engines.base import EngineError
    from .engines.registry import EngineRegistry
    from .measure.feeding import load_prompts

    if args.startup:
        try:
            seconds = bench.measure_startup(args.engine, catalog=args.catalog, host=args.host)
        except (RuntimeError, TimeoutError, OSError) as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        sys.stdout.write(f"app.py --engine {args.engine}: ready (engine loaded) {seconds:.1f} s after launch\n")
        return 0
    registry = None
    try:
        catalog = load_catalog(args.catalog)
        host = simulated_host(args.host) if args.host else probe()
        registry = EngineRegistry(catalog, host)
        prompts = load_prompts(Path(args.prompts), catalog.get(args.engine).sample_rates.input, args.max_prompt)
        engine = registry.get(args.engine)
    except (CatalogError, KeyError, ValueError, FileNotFoundError, EngineError) as exc:
        sys.stderr.write(f"error: {exc}\n")
        if registry is not None:
            registry.close()
        return 2
    try:
        return _bench_loaded(args, host, registry, engine, prompts)
    except (RuntimeError, OSError) as exc:  # e.g. the WebRTC server did not start, an output file not writable
        log.debug("bench failed", exc_info=True)
        sys.stderr.write(f"error: {exc}\n")
        return 2
    finally:
        registry.close()


def _bench_loaded(args: argparse.Namespace, host: object, registry: object, engine: object, prompts: list) -> int:
    from pathlib import Path

    from tqdm import tqdm

    from .benchmarks import latency as bench
    from .engines.base import SessionOptions

    sys.stderr.write(f"{args.engine} loaded in {registry.state(args.engine).seconds or 0.0:.1f} s; {len(prompts)} prompt(s) x {args.repeat}\n")  # type: ignore[attr-defined]
    judge = None
    if args.judges:
        from .judges.scorer import Judges

        judge = Judges().score
    label = f"{args.engine} via webrtc" if args.via == "webrtc" else args.engine
    with tqdm(total=len(prompts) * args.repeat, desc=label, unit="turn", file=sys.stderr) as bar:
        options = {"repeat": args.repeat, "tail_s": args.tail, "timeout_s": args.timeout, "progress": bar, "judge": judge,
                   "options": SessionOptions(seed=args.seed)}
        if args.via == "webrtc":
            from .benchmarks import webrtc as bench_webrtc

            turns, rows = bench_webrtc.compare(engine, registry, prompts, **options)  # type: ignore[arg-type]
        else:
            turns = bench.benchmark(engine, prompts, **options)  # type: ignore[arg-type]
    doc = bench.report(args.engine, host, turns)  # type: ignore[arg-type]
    doc["load_s"] = round(registry.state(args.engine).seconds or 0.0, 2)  # type: ignore[attr-defined]
    doc["seed"] = args.seed
    text = bench.format_summary(doc)
    if args.via == "webrtc":
        doc["webrtc"] = {"summary": bench_webrtc.summarise_shares(rows), "rows": rows}
        text += "\n\n" + bench_webrtc.format_shares(doc["webrtc"])
    sys.stdout.write(text + "\n")
    if args.json:
        Path(args.json).write_text(json.dumps(doc, indent=2))
    if args.csv:
        bench.write_csv(doc, Path(args.csv))
    if args.plot:
        try:
            bench.write_plot(doc, Path(args.plot))
        except (ValueError, RuntimeError, OSError) as exc:  # matplotlib's own refusals are ValueErrors
            log.debug("plot failed", exc_info=True)
            sys.stderr.write(f"error: cannot write the plot {args.plot}: {' '.join(str(exc).split())}\n")
            return 2
    if args.via == "webrtc":
        return 0 if doc["webrtc"]["summary"].get("webrtc_v2v_ms") else 1
    return 0 if doc["summary"]["turns"]["ok"] else 1


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    drop_unreadable_gradio_port()  # before any command imports Gradio
    parser = argparse.ArgumentParser(prog="python -m speechlm_demo", description="SpeechLM Playground tools.")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="run the app (same flags as app.py)", add_help=False)
    engines = sub.add_parser("engines", help="list catalogue engines and whether this host offers them")
    engines.add_argument("--json", action="store_true", help="machine-readable output")
    engines.add_argument("--markdown", action="store_true", help="a Markdown table (for the README)")
    engines.add_argument("--host", help="simulate a host: cpu, mps, cuda:GB, rocm:GB")
    engines.add_argument("--catalog", help="catalogue file (default configs/engines.yaml)")
    engines.add_argument("--experimental", action="store_true", help="offer experimental accelerators")
    bench = sub.add_parser("bench", help="feed prompt WAVs through an engine in real time; latency percentiles")
    bench.add_argument("--engine", required=True, help="catalogue id")
    bench.add_argument("--prompts", help="folder of WAVs (+ optional NAME.txt / NAME.json sidecars)")
    bench.add_argument("--startup", action="store_true", help="instead: time app.py's launch until the engine is loaded")
    bench.add_argument("--repeat", type=positive_int, default=1, help="turns per prompt")
    bench.add_argument("--json", type=output_file, help="write the full report here")
    bench.add_argument("--csv", type=output_file, help="write one row per turn here")
    bench.add_argument("--plot", type=plot_file, help="write a box plot of the metrics here (PNG; .svg, .pdf, ... by suffix)")
    bench.add_argument("--tail", type=non_negative_float, default=4.0, help="seconds of silence fed after each prompt")
    bench.add_argument("--timeout", type=positive_float, default=30.0, help="seconds to wait for a turn to end")
    bench.add_argument("--max-prompt", type=positive_float, default=60.0, help="prompts longer than this many seconds are cut")
    bench.add_argument("--judges", action="store_true", help="score every reply with the automatic judges (DNSMOS, round-trip WER, ...)")
    bench.add_argument("--host", help="simulate a host (catalogue decisions only)")
    bench.add_argument("--seed", type=_seed, default=0,
                       help="sampling seed of every turn (default 0: a prompt gets the same reply on every repeat and on both "
                            "paths of --via webrtc, where the engine honours seeds); 'none': each turn samples freely")
    bench.add_argument("--via", choices=("process", "webrtc"), default="process",
                       help="webrtc: each prompt in process, then through the app's /rtc routes with an aiortc peer on loopback")
    bench.add_argument("--catalog", help="catalogue file")
    prompts = sub.add_parser("make-prompts", help="write benchmark prompt sets: espeak-ng (complete / paused / noisy / interrupt / varied / heldout), real voices, Piper")
    prompts.add_argument("directory")
    prompts.add_argument("--seed", type=int, default=0,
                         help="rendering of the Piper sets (natural/, fresh/): one seed gives the same audio on every run; "
                              "report cuts over several (the espeak-ng sets do not change with it)")
    from .benchmarks import moshi_frames as moshi_bench

    moshi_bench.add_arguments(sub.add_parser("bench-moshi", help="Moshi per-frame step time and RTF with random weights"))
    from .benchmarks import soak

    soak.add_arguments(sub.add_parser("bench-soak", help="monologues and questions in a row: threads, memory, reply rate"))
    from .benchmarks import smart_turn_scores

    smart_turn_scores.add_arguments(sub.add_parser("smart-turn", help="Smart Turn v3's probability at each pause and end of prompt WAVs, median per kind"))
    from .judges import folder as judge_folder

    judge_folder.add_arguments(sub.add_parser("judge", help="score a folder of WAVs with the automatic judges (DNSMOS, round-trip WER, ...)"))
    votes_commands.register(sub)
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        return _run(args, rest)  # Ctrl-C: the app's own way, see .interrupt
    with unwind_on_interrupt():  # a command's clean-ups run on Ctrl-C, then it exits 130
        return _command(parser, args, rest)


def _command(parser: argparse.ArgumentParser, args: argparse.Namespace, rest: list[str]) -> int:
    """Every command but ``run``; returns the exit status."""
    if args.command == "make-prompts":
        from pathlib import Path

        from .benchmarks.prompt_sets import make_prompts

        try:
            counts = make_prompts(Path(args.directory), seed=args.seed)
        except (RuntimeError, OSError) as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 2
        sys.stdout.write(
            f"wrote {counts['complete']} complete, {counts['paused']} paused, {counts['noisy']} noisy and {counts['interrupt']} interrupt prompts, "
            f"{counts['varied']} varied (for tuning) and {counts['heldout']} held-out (never for tuning), {counts['real']} real-voice "
            f"turns, {counts['natural']} natural and {counts['fresh']} fresh (Piper, seed {args.seed}, never for tuning) to {args.directory}\n"
        )
        return 0
    if rest:
        parser.error(f"unrecognised arguments: {' '.join(rest)}")
    from .benchmarks import moshi_frames, smart_turn_scores, soak
    from .judges import folder as judge_folder

    runners = {"bench-moshi": moshi_frames, "bench-soak": soak, "smart-turn": smart_turn_scores, "judge": judge_folder}
    if args.command in runners:
        return runners[args.command].run_cli(args)
    if args.command in votes_commands.COMMANDS:
        return votes_commands.run(args)
    if args.command == "bench" and not (args.prompts or args.startup):
        parser.error("bench needs --prompts DIR (or --startup)")
    if args.command == "bench" and args.startup and args.via == "webrtc":
        parser.error("--startup times the app's launch; --via webrtc runs prompts: use one of them")
    return _bench(args) if args.command == "bench" else _engines(args)
