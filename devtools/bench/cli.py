"""The `cardgame bench` subcommands: arguments, running, printing and saving the JSON."""

from __future__ import annotations

import argparse
import json
import signal
from pathlib import Path
from typing import Any

from devtools.bench.report import RESULTS_DIR, write_json


def add_parser(sub: Any) -> None:
    bench = sub.add_parser(
        "bench", help="benchmarks: e2e, matchmaker, connections, matchmaking, compare"
    )
    kinds = bench.add_subparsers(dest="bench", required=True)

    e2e = kinds.add_parser("e2e", help="C clients play PvP against a stack for S seconds")
    e2e.add_argument("--pods", type=int, default=2)
    e2e.add_argument("--clients", type=int, default=100)
    e2e.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    e2e.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    e2e.add_argument(
        "--think",
        type=float,
        default=0.0,
        help="most seconds a client pauses between matches (0: closed loop)",
    )
    e2e.add_argument(
        "--tick",
        type=float,
        default=None,
        help="TryMatch interval of a started stack (default: configuration)",
    )
    e2e.add_argument(
        "--no-compression",
        action="store_true",
        help="do not offer permessage-deflate (the default offers it)",
    )
    e2e.add_argument(
        "--profile",
        type=Path,
        help="profile the Python processes in the window with py-spy; raw stacks go here",
    )
    e2e.add_argument("--auth", help="use a running stack: its auth URL (with --game)")
    e2e.add_argument("--game", help="the running stack's game WebSocket URLs, comma-separated")

    mm = kinds.add_parser("matchmaker", help="the matchmaker alone against real Redis")
    mm.add_argument(
        "--queued",
        type=int,
        nargs="+",
        default=[10_000, 100_000, 1_000_000],
        help="queue lengths to measure (default 10k 100k 1M)",
    )
    mm.add_argument("--batch", type=int, default=None, help="players per pop (default: config)")

    conn = kinds.add_parser("connections", help="memory per idle WebSocket on one game server")
    conn.add_argument("--idle", type=int, default=1000)

    quality = kinds.add_parser(
        "matchmaking", help="Ranked match quality: waits and rating differences"
    )
    quality.add_argument("--players", type=int, default=2000, help="population size")
    quality.add_argument(
        "--arrival-rate",
        type=float,
        default=20.0,
        help="players entering the Ranked queue per second (Poisson)",
    )
    quality.add_argument("--duration", type=float, default=30.0, help="seconds of arrivals")
    quality.add_argument(
        "--servers", type=int, default=1, help="match servers working the queue at once"
    )
    quality.add_argument("--seed", type=int, default=1, help="population and arrivals")

    compare = kinds.add_parser(
        "compare", help="e2e and the Colyseus duel cycle side by side, with the ratios"
    )
    compare.add_argument(
        "--colyseus",
        type=Path,
        required=True,
        help="the Colyseus peer folder (e.g. ../shared/peers/colyseus); copied, not changed",
    )
    compare.add_argument("--clients", type=int, nargs="+", default=[500, 2000])
    compare.add_argument("--pods", type=int, default=2)
    compare.add_argument("--duration", type=float, default=25.0, help="measured seconds each")

    for parser in (e2e, mm, conn, quality, compare):
        parser.add_argument("--json", action="store_true", help="print the JSON result last")
        parser.add_argument(
            "--out",
            type=Path,
            default=RESULTS_DIR,
            help=f"directory for the JSON result (default {RESULTS_DIR}/)",
        )


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through the stack's stop(): no orphaned servers


def run(args: argparse.Namespace, argv: list[str] | None) -> int:
    signal.signal(signal.SIGTERM, _interrupt)
    if args.bench == "e2e":
        from devtools.bench.e2e import bench_e2e, print_e2e

        games = args.game.split(",") if args.game else None
        if bool(args.auth) != bool(games):
            raise SystemExit("--auth and --game go together")
        result = bench_e2e(
            args.pods,
            args.clients,
            args.duration,
            warmup=args.warmup,
            think=args.think,
            tick=args.tick,
            compression=not args.no_compression,
            auth_url=args.auth,
            game_urls=games,
            profile=args.profile,
        )
        printer = print_e2e
    elif args.bench == "matchmaker":
        from devtools.bench.matchmaker import bench_matchmaker, print_matchmaker

        result = bench_matchmaker(args.queued, args.batch)
        printer = print_matchmaker
    elif args.bench == "matchmaking":
        from devtools.bench.matchmaking import bench_matchmaking, print_matchmaking

        result = bench_matchmaking(
            args.players, args.arrival_rate, args.duration, args.servers, args.seed
        )
        printer = print_matchmaking
    elif args.bench == "compare":
        from devtools.bench.compare import bench_compare, print_compare

        result = bench_compare(args.colyseus, args.clients, args.pods, args.duration)
        printer = print_compare
    else:
        from devtools.bench.connections import bench_connections, print_connections

        result = bench_connections(args.idle)
        printer = print_connections
    result["command"] = "cardgame " + " ".join(argv) if argv else None
    printer(result)
    path = write_json(args.bench, result, args.out)
    print(f"saved {path}")
    if args.json:
        print(json.dumps(result))
    return 0
