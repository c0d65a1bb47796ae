"""`fake-client`: scripted sessions against a running stack."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from fake_client.pvp import print_summary, run_pvp


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fake-client", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    pvp = sub.add_parser("pvp", help="play scripted PvP matches and summarise them")
    pvp.add_argument("--auth", required=True, help="auth server URL, e.g. http://127.0.0.1:8000")
    pvp.add_argument("--game", required=True, help="game server WebSocket URL(s), comma-separated")
    pvp.add_argument(
        "--login",
        choices=["steam", "dev"],
        default="steam",
        help="steam: tickets from the Steam simulator (default); dev: /login/dev",
    )
    pvp.add_argument(
        "--steam-sim",
        default="http://127.0.0.1:8300",
        help="Steam Web API simulator URL (what `cardgame up` prints last)",
    )
    pvp.add_argument("--pairs", type=int, default=10, help="matches to play (players = 2x)")
    pvp.add_argument("--mode", default="normal", help="normal or ranked")
    pvp.add_argument("--timeout", type=float, default=60.0, help="seconds per step")
    pvp.add_argument("--json", action="store_true", help="print the summary as JSON last")
    # Party duels and PvE.
    party = sub.add_parser("party", help="party duels: create, join by code, queue, battle")
    pve = sub.add_parser("pve", help="battles against the AI on the player's game server")
    pve.add_argument("--difficulty", choices=["easy", "normal", "hard"], default="normal")
    for extra in (party, pve):
        extra.add_argument("--auth", required=True, help="auth server URL")
        extra.add_argument(
            "--game", required=True, help="game server WebSocket URL(s), comma-separated"
        )
        extra.add_argument("--login", choices=["steam", "dev"], default="steam")
        extra.add_argument("--steam-sim", default="http://127.0.0.1:8300")
        extra.add_argument("--battles", type=int, default=5, help="battles to play at once")
        extra.add_argument("--timeout", type=float, default=30.0, help="seconds per step")
        extra.add_argument("--json", action="store_true", help="print the summary as JSON last")
    args = parser.parse_args(argv)
    if args.command in ("party", "pve"):
        from fake_client.modes import print_mode_summary, run_mode

        result = asyncio.run(
            run_mode(
                args.command,
                args.auth.rstrip("/"),
                args.game.split(","),
                args.battles,
                difficulty=getattr(args, "difficulty", "normal"),
                timeout=args.timeout,
                steam_sim_url=args.steam_sim.rstrip("/") if args.login == "steam" else None,
            )
        )
        print_mode_summary(result, sys.stderr if args.json else sys.stdout)
        if args.json:
            print(json.dumps(result.as_dict()))
        return 0 if result.failed == 0 else 1

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty() or done == total or done % max(1, total // 10) == 0:
            print(
                f"\rplayers done {done}/{total}",
                end="\n" if done == total else "",
                file=sys.stderr,
                flush=True,
            )

    summary = asyncio.run(
        run_pvp(
            args.auth.rstrip("/"),
            args.game.split(","),
            args.pairs,
            mode=args.mode,
            timeout=args.timeout,
            progress=progress,
            steam_sim_url=(args.steam_sim.rstrip("/") if args.login == "steam" else None),
        )
    )
    print_summary(summary, sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(summary.as_dict()))
    return 0 if summary.matches_failed == 0 and summary.players_failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
