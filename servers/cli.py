"""`cardgame`: run the servers, a whole local stack, the scripted PvP demo, or the benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys

from servers.bench import cli as bench_cli
from servers.common.config import Settings, load_settings


def serve(kind: str, settings: Settings) -> None:
    from servers.common.http import run_app

    if kind == "auth":
        from servers.auth.app import create_app as auth_app

        run_app(auth_app(settings), settings.auth.host, settings.auth.port)
    elif kind == "steam-sim":
        from servers.auth.steam_sim import create_app as steam_sim_app

        run_app(steam_sim_app(settings.steam, settings.instance_id), settings.steam.sim_host,
                settings.steam.sim_port)
    elif kind == "game":
        from servers.game.app import create_app as game_app

        run_app(game_app(settings), settings.game.host, settings.game.port,
                websocket_max_message_size=settings.game.max_frame_bytes)
    else:
        from servers.match.app import create_app as match_app

        run_app(match_app(settings), settings.match.host, settings.match.port)


def up(settings: Settings, pods: int) -> int:
    from servers.stack import STATE_FILE, Stack

    stack = Stack(settings, pods=pods, fixed_ports=True)
    stack.start()
    try:
        for url in stack.endpoints():
            print(url, flush=True)
        STATE_FILE.write_text(json.dumps({"redis": stack.settings.redis.url,
                                          "database": stack.settings.database.url,
                                          "namespace": stack.settings.redis.namespace}))
        print(f"# logs in {stack.log_dir}; Ctrl-C stops everything", file=sys.stderr, flush=True)
        stop = asyncio.Event()

        async def wait() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await stop.wait()
        asyncio.run(wait())
    finally:
        STATE_FILE.unlink(missing_ok=True)
        stack.stop()
    return 0


def demo(settings: Settings, pods: int, pairs: int, as_json: bool) -> int:
    from fake_client.pvp import print_summary, run_pvp
    from servers.stack import Stack

    with Stack(settings, pods=pods) as stack:
        print(f"stack up: auth {stack.auth_url}, game {', '.join(stack.game_urls)}",
              file=sys.stderr, flush=True)
        summary = asyncio.run(run_pvp(stack.auth_url, stack.game_urls, pairs,
                                      steam_sim_url=stack.steam_sim_url or None))
    print_summary(summary)
    if as_json:
        print(json.dumps(summary.as_dict()))
    return 0 if summary.matches_failed == 0 and summary.players_failed == 0 else 1


def chaos_cmd(settings: Settings, args: argparse.Namespace) -> int:
    from servers.chaos import print_report, run_chaos

    report = run_chaos(settings, pods=args.pods, duration=args.duration, players=args.players,
                       seed=args.seed)
    print_report(report)
    if args.json:
        print(json.dumps(report.as_dict()))
    return 0 if report.lost == 0 and report.duplicates == 0 and not report.problems else 1


def migrate_cmd(settings: Settings) -> int:
    from servers.common.db import migrate

    if not settings.database.url:
        print("set DATABASE_URL (or [database] url) to migrate", file=sys.stderr)
        return 2
    for name in asyncio.run(migrate(settings.database.url)) or ["(nothing to apply)"]:
        print(name)
    return 0


def schema_text() -> str:
    from servers.common.protocol import protocol_schema

    return json.dumps(protocol_schema(), indent=2, sort_keys=True) + "\n"


def openapi_text() -> str:
    from servers.auth.openapi import openapi_document

    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def openapi_cmd(path: str | None) -> int:
    if path:
        with open(path, "w") as out:
            out.write(openapi_text())
    else:
        sys.stdout.write(openapi_text())
    return 0


def schema_cmd(path: str | None) -> int:
    if path:
        with open(path, "w") as out:
            out.write(schema_text())
    else:
        sys.stdout.write(schema_text())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cardgame", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run one server process (settings from config + env)")
    s.add_argument("kind", choices=["auth", "game", "match", "steam-sim"])
    u = sub.add_parser("up", help="run auth + N pods in the foreground; prints the endpoints")
    u.add_argument("--pods", type=int, default=1)
    d = sub.add_parser("demo", help="bring a stack up, play scripted PvP, print a summary")
    d.add_argument("--pods", type=int, default=2)
    d.add_argument("--pairs", type=int, default=50)
    d.add_argument("--json", action="store_true")
    c = sub.add_parser("chaos", help="kill and restart servers under load; check no player is"
                                     " lost or duplicated (exit 1 if any)")
    c.add_argument("--pods", type=int, default=3)
    c.add_argument("--duration", type=float, default=60.0, help="seconds of kills")
    c.add_argument("--players", type=int, default=60)
    c.add_argument("--seed", type=int, default=None)
    c.add_argument("--json", action="store_true")
    sub.add_parser("migrate", help="apply database migrations to DATABASE_URL")
    b = sub.add_parser("burst", help="measure the auth rate limit under a burst (own stack)")
    b.add_argument("--requests", type=int, default=500)
    b.add_argument("--concurrency", type=int, default=50)
    b.add_argument("--duration", type=float, default=0.0,
                   help="spread the requests over this many seconds (0: all at once)")
    sc = sub.add_parser("schema", help="print the client protocol's JSON Schema")
    sc.add_argument("--write", metavar="PATH", help="write it to PATH instead")
    oa = sub.add_parser("openapi", help="print the auth server's OpenAPI description")
    oa.add_argument("--write", metavar="PATH", help="write it to PATH instead")
    bench_cli.add_parser(sub)
    args = parser.parse_args(argv)

    logging.basicConfig(level=os.environ.get("CARDGAME_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    if args.command == "schema":
        return schema_cmd(args.write)
    if args.command == "openapi":
        return openapi_cmd(args.write)
    if args.command == "bench":
        return bench_cli.run(args, sys.argv[1:] if argv is None else argv)
    settings = load_settings()
    if args.command == "serve":
        from servers.common import logs

        logs.configure(settings.log.format, os.environ.get("CARDGAME_LOG_LEVEL",
                                                           settings.log.level),
                       settings.pod_id if args.kind in ("game", "match") else None, args.kind)
        serve(args.kind, settings)
        return 0
    if args.command == "up":
        return up(settings, args.pods)
    if args.command == "chaos":
        return chaos_cmd(settings, args)
    if args.command == "demo":
        return demo(settings, args.pods, args.pairs, args.json)
    if args.command == "burst":
        from servers import ratelimit_burst

        return ratelimit_burst.main(settings, args.requests, args.concurrency, args.duration)
    return migrate_cmd(settings)


if __name__ == "__main__":
    sys.exit(main())
