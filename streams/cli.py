"""The `ssi` command line.

Subcommands import what they need lazily so that `ssi score-file` stays quick and works without
a broker or Redis.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from scoring.errors import InvalidEvent, ModelError, SsiError
from scoring.events import parse_time
from scoring.model import PILLAR_NAMES, PILLARS, Model, load_model


def _model(path: str | None) -> Model:
    return load_model(path or os.environ.get("SSI_MODEL") or None)


def _lines(path: str) -> Iterator[bytes]:
    if path == "-":
        yield from sys.stdin.buffer
        return
    with open(path, "rb") as fh:
        yield from fh


def cmd_score_file(args: argparse.Namespace) -> int:
    from scoring.batch import records, score_lines

    model = _model(args.model)
    now = None
    if args.now:
        try:
            now = parse_time(args.now)
        except InvalidEvent as exc:
            print(f"ssi score-file: --now: {exc.message}", file=sys.stderr)
            return 2
    try:
        result = score_lines(_lines(args.file), model, now)
    except OSError as exc:
        print(f"ssi score-file: {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    for lineno, err in result.errors:
        print(f"line {lineno}: {err.code}: {err.message}", file=sys.stderr)
    out = sys.stdout
    for rec in records(result, model, explain=args.explain):
        out.write(json.dumps(rec, separators=(",", ":"), ensure_ascii=False) + "\n")
    out.flush()
    if args.summary or result.errors:
        print(
            f"{len(result.states)} users, {result.accepted} events scored, "
            f"{result.duplicates} duplicates, {len(result.errors)} rejected",
            file=sys.stderr,
        )
    return 1 if args.strict and result.errors else 0


def print_model(model: Model, out: IO[str]) -> None:
    """The effective model as a readable table."""
    out.write(f"ssi scoring model version {model.model_version}  (source: {model.source})\n")
    out.write(
        f"window: {model.window_days} UTC days ending on the clock's day; "
        f"persona: {', '.join(sorted(model.persona))}\n"
        f"s(x, t) = 1 - exp(-2x/t): the target t earns 86% of a component's points\n\n"
    )
    header = f"{'pillar':<14}{'component':<21}{'points':>6}  formula"
    out.write(header + "\n" + "-" * 96 + "\n")
    for pillar in PILLARS:
        for c in model.pillar_components(pillar):
            out.write(f"{pillar:<14}{c.key:<21}{c.points:>6g}  {describe(c, model)}\n")
        total = sum(c.points for c in model.pillar_components(pillar))
        out.write(f"{'':<14}{'= ' + PILLAR_NAMES[pillar]:<35}{total:>6g}\n\n")
    out.write("\ncounters (per-day caps apply to each day before summing the window):\n")
    for name, counter in model.counters.items():
        scope = "window" if counter.window else "all time"
        cap = f", cap {counter.cap:g}/day" if counter.cap is not None else ""
        out.write(f"  {name:<22}{scope}{cap}\n")


def describe(c: object, model: Model) -> str:
    from scoring.model import Component

    assert isinstance(c, Component)

    def terms(inputs: dict[str, float]) -> str:
        return " + ".join(k if w == 1 else f"{w:g}·{k}" for k, w in inputs.items())

    if c.kind == "profile":
        return "profile: " + ", ".join(
            f"{i.field}{'≥' + str(i.at_least) if i.at_least > 1 else ''}"
            f"{' /' + str(i.per) if i.per else ''} {i.weight:g}"
            for i in c.items
        )
    if c.kind == "saturation":
        x = terms(c.inputs)
        if c.per:
            x = f"({x}) / {c.per}"
        return f"s({x}, {c.target:g})"
    if c.kind == "linear":
        return f"{c.points:g} × min(1, {terms(c.inputs)} / {c.full_at:g})"
    prior = f" + {c.prior_num:g}" if c.prior_num else ""
    prior_d = f" + {c.prior_den:g}" if c.prior_den else ""
    return (
        f"r = ({c.numerator}{prior}) / ({c.denominator}{prior_d}); "
        f"{c.points:g} × min(1, r / {c.goal:g}); 0 when no {c.denominator}"
    )


def cmd_model(args: argparse.Namespace) -> int:
    model = _model(args.file)
    if args.toml:
        if args.file or os.environ.get("SSI_MODEL"):
            sys.stdout.write(Path(args.file or os.environ["SSI_MODEL"]).read_text())
        else:
            from importlib import resources

            sys.stdout.write(resources.files("scoring").joinpath("model.toml").read_text())
        return 0
    print_model(model, sys.stdout)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    if args.out is not None:
        from streams.simulator import run_simulate

        return run_simulate(args)
    return simulate_to_broker(args)


def simulate_to_broker(args: argparse.Namespace) -> int:
    """`ssi simulate` without --out: live activity to `<prefix>activity` at --rate."""
    import asyncio
    from datetime import UTC, datetime

    from aiokafka import AIOKafkaProducer

    from streams.config import Settings
    from streams.produce import bootstrap_of, progress_bar, send_paced
    from streams.simulator import live

    settings = Settings()
    if settings.embedded_broker:
        raise SsiError(
            "simulate: set SSI_BROKER_URL to the broker to send to (kafka://host:port), "
            "or write a file with --out FILE; `ssi demo` runs everything embedded"
        )
    fixed = settings.fixed_clock()

    def clock() -> datetime:
        return fixed or datetime.now(UTC)

    async def run() -> int:
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_of(settings.broker_url), linger_ms=5, acks="all"
        )
        await producer.start()
        try:
            return await send_paced(
                producer,
                settings.topic("activity"),
                live(args.users, args.seed, args.rate, clock),
                args.rate,
                args.duration,
                progress_bar(args.duration),
            )
        finally:
            await producer.stop()

    sent = asyncio.run(run())
    print(f"\nssi simulate: sent {sent} events to {settings.topic('activity')}", file=sys.stderr)
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from streams.worker import main_worker

    return main_worker()


def cmd_rebuild(args: argparse.Namespace) -> int:
    from streams.rebuild import run_rebuild

    return run_rebuild()


def cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_demo

    return run_demo(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ssi",
        description="ssi-stream: a real-time Social Selling Index scorer.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser(
        "score-file",
        help="batch reference scorer: JSONL events in, one JSON line per user out",
        description=(
            "Score a JSONL file of activity events (CloudEvents, structured mode). One JSON line "
            "per user, sorted by user id. Invalid lines go to stderr as 'line N: CODE: reason'."
        ),
    )
    p.add_argument("file", help="JSONL file of events, or - for stdin")
    p.add_argument("--now", help="the clock (RFC 3339); default: the latest valid event time")
    p.add_argument("--explain", action="store_true", help="add components and advice")
    p.add_argument("--strict", action="store_true", help="exit 1 when any line was rejected")
    p.add_argument("--summary", action="store_true", help="print counts on stderr")
    p.add_argument("--model", help="scoring-model TOML file (default: $SSI_MODEL or built-in)")
    p.set_defaults(func=cmd_score_file)

    p = sub.add_parser(
        "worker",
        help="run a scorer worker (embedded broker/Redis when not configured)",
        description="Run a scorer worker. Configuration comes from SSI_* environment variables.",
    )
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser(
        "demo",
        help="the whole system on embedded infrastructure with simulated activity",
        description=(
            "Start the embedded broker and Redis, a worker, and the simulator, and show a live "
            "view. Prints the API URL and a token."
        ),
    )
    p.add_argument("--users", type=int, default=1000, help="simulated users (default 1000)")
    p.add_argument("--rate", type=float, default=200.0, help="live events per second (default 200)")
    p.add_argument(
        "--backfill-days",
        type=int,
        default=28,
        help="days of history sent first, as fast as possible (default 28; 0: none)",
    )
    p.add_argument("--duration", type=float, default=0.0, help="seconds to run (0: until Ctrl-C)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--port", type=int, default=6066, help="web port (default 6066)")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser(
        "rebuild",
        help="rebuild Redis state from the retained activity topic (workers stopped)",
        description=(
            "Replay <prefix>activity from the beginning into Redis through the stream's own "
            "apply path, restore versions from <prefix>score-changes, publish what differs."
        ),
    )
    p.set_defaults(func=cmd_rebuild)

    p = sub.add_parser("model", help="print the effective scoring model")
    p.add_argument("--file", help="scoring-model TOML file (default: $SSI_MODEL or built-in)")
    p.add_argument("--toml", action="store_true", help="print the model file itself")
    p.set_defaults(func=cmd_model)

    p = sub.add_parser(
        "simulate",
        help="realistic synthetic activity, to a JSONL file or the broker",
        description="Generate a realistic synthetic population's activity.",
    )
    p.add_argument("--users", type=int, default=1000, help="population size (default 1000)")
    p.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    p.add_argument("--days", type=int, default=35, help="days of history for --out (default 35)")
    p.add_argument("--end", help="end of the simulated period, RFC 3339 (default: now)")
    p.add_argument("--rate", type=float, default=0.0, help="events per second to the broker")
    p.add_argument("--duration", type=float, default=0.0, help="seconds to stream (0: forever)")
    p.add_argument("--out", help="write JSONL here (- for stdout) instead of the broker")
    p.set_defaults(func=cmd_simulate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        rc: int = args.func(args)
    except ModelError as exc:
        print(f"ssi: model: {exc}", file=sys.stderr)
        return 2
    except SsiError as exc:
        print(f"ssi: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        return 0
    except KeyboardInterrupt:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main())
