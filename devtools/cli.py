"""The development and testing commands of `cardgame`: a local stack (`up`, `stacks`), the
scripted PvP `demo`, `chaos`, the two-pods `race` probe, the rate-limit `burst`, the benchmarks
(`bench`) and the Steam Web API simulator (`serve steam-sim`).

They live apart from the servers so that a production image holds only what production runs;
`servers/cli.py` adds them to the one `cardgame` entry point when this package is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any

from devtools.bench import cli as bench_cli
from servers.common.config import Settings

if TYPE_CHECKING:
    from devtools.stack import Stack

# `cardgame serve KIND` for the servers that only development runs.
SERVE_KINDS = ("steam-sim",)
COMMANDS = ("up", "stacks", "demo", "chaos", "race", "check-tickets", "burst", "bench")


def positive_int(text: str) -> int:
    """argparse type for counts that must be at least 1 (a stack needs a pod)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def up(settings: Settings, pods: int, keep_going: bool) -> int:
    """Start the stack, print its endpoints, then supervise it until Ctrl-C (exit 0) or, unless
    keep_going, until a server dies (exit 1). A start that fails exits 1 with the reason."""
    from devtools import stack_state
    from devtools.stack import Stack, StackError

    stack = Stack(settings, pods=pods, fixed_ports=True)
    try:
        stack.start()
    except StackError as exc:
        print(f"cardgame up: {exc}", file=sys.stderr, flush=True)
        return 1
    try:
        for url in stack.endpoints():
            print(url, flush=True)
        state = stack_state.StackState(
            instance=stack.instance_id,
            pid=os.getpid(),
            started=time.time(),
            pods=pods,
            auth_url=stack.auth_url,
            game_urls=stack.game_urls,
            steam_sim_url=stack.steam_sim_url,
            redis=stack.settings.redis.url,
            database=stack.settings.database.url,
            namespace=stack.settings.redis.namespace,
            log_dir=str(stack.log_dir),
            endpoints=stack.endpoints(),
        )
        try:
            where = f"state in {stack_state.write(state)}"
        except OSError as exc:  # a convenience for the console: the stack runs without it
            where = f"no state file ({exc}): cardgame-console needs --redis to find this stack"
        print(
            f"# stack {stack.instance_id}: logs in {stack.log_dir}, {where}; "
            "Ctrl-C stops everything",
            file=sys.stderr,
            flush=True,
        )
        failed = asyncio.run(supervise(stack, keep_going))
    finally:
        stack_state.remove(stack.instance_id)
        stack.stop()
    return 1 if failed else 0


async def supervise(stack: Stack, keep_going: bool) -> bool:
    """Watch the servers until SIGINT/SIGTERM; True when one of them died.

    Every exit is reported on stderr at once. A server that fails (non-zero exit, a signal)
    stops the whole stack unless keep_going: half a stack that looks up is worse than none.
    A clean exit (code 0) is a server that was asked to stop, e.g. a pod drained from the
    console, and leaves the rest running."""
    loop = asyncio.get_running_loop()
    wake = asyncio.Event()
    stopping = False

    def on_stop() -> None:
        nonlocal stopping
        stopping = True
        wake.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_stop)
    loop.add_signal_handler(signal.SIGCHLD, wake.set)  # a child exited: look now
    died = False
    while not stopping:
        wake.clear()
        for proc in stack.newly_exited():
            print(f"cardgame up: {proc.exit_report()}", file=sys.stderr, flush=True)
            died = died or proc.returncode != 0
        services_down = stack.services_down()
        for report in services_down:
            print(f"cardgame up: {report}", file=sys.stderr, flush=True)
        died = died or bool(services_down)
        # Without Redis or PostgreSQL no server can work: stop even with --keep-going.
        if died and (not keep_going or services_down):
            print(
                "cardgame up: stopping the stack (--keep-going keeps the rest running)",
                file=sys.stderr,
                flush=True,
            )
            break
        if not any(proc.alive() for proc in stack.procs):
            print("cardgame up: no server left running", file=sys.stderr, flush=True)
            break
        with contextlib.suppress(TimeoutError):
            # SIGCHLD wakes us at once; the timeout only guards against a missed signal.
            await asyncio.wait_for(wake.wait(), 1.0)
    return died


def stacks_cmd() -> int:
    """One line per running `cardgame up` on this machine, newest first."""
    from devtools import stack_state

    found = stack_state.running()
    for state in found:
        print(state.describe())
    if not found:
        print("no running stack (start one with `cardgame up`)", file=sys.stderr)
    return 0


def demo(settings: Settings, pods: int, pairs: int, as_json: bool) -> int:
    from devtools.stack import Stack
    from fake_client.pvp import print_summary, run_pvp

    with Stack(settings, pods=pods) as stack:
        print(
            f"stack up: auth {stack.auth_url}, game {', '.join(stack.game_urls)}",
            file=sys.stderr,
            flush=True,
        )
        summary = asyncio.run(
            run_pvp(
                stack.auth_url, stack.game_urls, pairs, steam_sim_url=stack.steam_sim_url or None
            )
        )
    print_summary(summary)
    if as_json:
        print(json.dumps(summary.as_dict()))
    return 0 if summary.matches_failed == 0 and summary.players_failed == 0 else 1


def chaos_cmd(settings: Settings, args: argparse.Namespace) -> int:
    from devtools.chaos import print_report, run_chaos

    report = run_chaos(
        settings,
        pods=args.pods,
        duration=args.duration,
        players=args.players,
        seed=args.seed,
        clients=args.clients,
        adversaries=args.adversaries,
    )
    print_report(report)
    if args.json:
        print(json.dumps(report.as_dict()))
    return 1 if report.failed else 0


def race_cmd(settings: Settings, args: argparse.Namespace) -> int:
    from devtools.race import print_race, run_race

    report = run_race(
        settings,
        pods=args.pods,
        attempts=args.attempts,
        concurrency=args.concurrency,
        grace=args.grace,
        seed=args.seed,
    )
    print_race(report)
    if args.json:
        print(json.dumps(report.as_dict()))
    return 1 if report.failed else 0


def check_tickets_cmd(settings: Settings, args: argparse.Namespace) -> int:
    """Double queues, ghost tickets and phantom queued players of one namespace, now: the
    newest running `cardgame up` unless --redis / --namespace name another."""
    from devtools import stack_state
    from devtools.invariants import check_tickets
    from servers.common.bus import connect_redis
    from servers.common.keys import Keys

    url, namespace = args.redis, args.namespace
    if url is None or namespace is None:
        running = stack_state.running()
        if not running and url is None:
            print("cardgame check-tickets: no running stack; give --redis", file=sys.stderr)
            return 1
        url = url or running[0].redis
        namespace = namespace or (running[0].namespace if running else None)
    namespace = namespace or settings.redis.namespace

    async def check() -> list[str]:
        redis = connect_redis(url, decode_responses=True)
        try:
            return [str(f) for f in await check_tickets(redis, Keys(namespace))]
        finally:
            await redis.aclose()

    found = asyncio.run(check())
    for line in found:
        print(line)
    print(f"{len(found)} violations in namespace {namespace}", file=sys.stderr)
    return 1 if found else 0


def serve(kind: str, settings: Settings) -> None:
    """Run one development server in the foreground (only the Steam simulator today)."""
    from devtools.steam_sim import create_app
    from servers.common.http import run_app

    run_app(
        create_app(settings.steam, settings.instance_id),
        settings.steam.sim_host,
        settings.steam.sim_port,
    )


def add_parsers(sub: Any) -> None:
    u = sub.add_parser("up", help="run auth + N pods in the foreground; prints the endpoints")
    u.add_argument("--pods", type=positive_int, default=1)
    u.add_argument(
        "--keep-going",
        action="store_true",
        help="when a server dies, report it and keep the others running (exit 1 at"
        " Ctrl-C); default: stop everything and exit 1",
    )
    sub.add_parser("stacks", help="list the running `cardgame up` stacks, newest first")
    d = sub.add_parser("demo", help="bring a stack up, play scripted PvP, print a summary")
    d.add_argument("--pods", type=positive_int, default=2)
    d.add_argument("--pairs", type=int, default=50)
    d.add_argument("--json", action="store_true")
    c = sub.add_parser(
        "chaos",
        help="kill and restart servers under load; check no player is"
        " lost or duplicated (exit 1 if any)",
    )
    c.add_argument("--pods", type=positive_int, default=3)
    c.add_argument("--duration", type=float, default=60.0, help="seconds of kills")
    c.add_argument("--players", type=int, default=60)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument(
        "--clients",
        choices=("normal", "adversarial", "mixed"),
        default="normal",
        help="normal: well-behaved players (each ticket accounted for); adversarial: players"
        " that race, double-connect and stop reading; mixed: both",
    )
    c.add_argument(
        "--adversaries",
        type=int,
        default=None,
        help="adversarial players (default: --players with adversarial, a quarter of it with"
        " mixed)",
    )
    c.add_argument("--json", action="store_true")
    r = sub.add_parser(
        "race",
        help="one player on two pods enqueuing in two modes at once, many times; exit 1 on any"
        " double queue or ghost ticket (own stack)",
    )
    r.add_argument("--pods", type=positive_int, default=2, help="at least 2 are started")
    r.add_argument("--attempts", type=positive_int, default=200)
    r.add_argument("--concurrency", type=positive_int, default=8, help="attempts at a time")
    r.add_argument(
        "--grace",
        type=float,
        default=1.0,
        help="the stack's reconnect grace in seconds (short, so closed sockets settle fast)",
    )
    r.add_argument("--seed", type=int, default=None)
    r.add_argument("--json", action="store_true")
    t = sub.add_parser(
        "check-tickets",
        help="double queues, ghost tickets and phantom queued players, now (exit 1 if any)",
    )
    t.add_argument("--redis", default=None, help="default: the newest running `cardgame up`")
    t.add_argument("--namespace", default=None, help="default: that stack's namespace")
    b = sub.add_parser("burst", help="measure the auth rate limit under a burst (own stack)")
    b.add_argument("--requests", type=int, default=500)
    b.add_argument("--concurrency", type=int, default=50)
    b.add_argument(
        "--duration",
        type=float,
        default=0.0,
        help="spread the requests over this many seconds (0: all at once)",
    )
    bench_cli.add_parser(sub)


def run(args: argparse.Namespace, argv: list[str], settings: Settings) -> int:
    """Run one of COMMANDS, parsed by a parser that add_parsers() filled."""
    if args.command == "bench":
        return bench_cli.run(args, argv)
    if args.command == "stacks":
        return stacks_cmd()
    if args.command == "up":
        return up(settings, args.pods, args.keep_going)
    if args.command == "check-tickets":
        return check_tickets_cmd(settings, args)
    if args.command == "burst":
        from devtools import burst

        return burst.main(settings, args.requests, args.concurrency, args.duration)
    from devtools.stack import StackError

    try:
        if args.command == "chaos":
            return chaos_cmd(settings, args)
        if args.command == "race":
            return race_cmd(settings, args)
        return demo(settings, args.pods, args.pairs, args.json)
    except StackError as exc:  # its message is for people; a traceback adds nothing
        print(f"cardgame {args.command}: {exc}", file=sys.stderr, flush=True)
        return 1
