"""`cardgame`: run a server (`serve`), apply migrations, load game content, prune old match
records (`db prune`), print the protocol's schemas; with the development tools installed
(`devtools/`), also a whole local stack, the demo and the benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path
from types import ModuleType

from servers.common.config import Settings, load_settings

SERVE_KINDS = ("auth", "game", "match")


def development_tools() -> ModuleType | None:
    """`devtools.cli` when the development tools are installed; None in a production image."""
    try:
        from devtools import cli
    except ModuleNotFoundError as exc:
        if exc.name != "devtools":
            raise
        return None
    return cli


def serve(kind: str, settings: Settings) -> None:
    from servers.common.http import run_app, run_loop

    if kind == "auth":
        from servers.auth.app import create_app as auth_app

        run_app(auth_app(settings), settings.auth.host, settings.auth.port)
    elif kind == "game":
        from servers.game import app as game

        run_loop(game.run(settings))
    else:
        from servers.match.app import create_app as match_app

        run_app(match_app(settings), settings.match.host, settings.match.port)


def migrate_cmd(settings: Settings) -> int:
    """The migrations, then the card catalogue (content/cards.toml). Announces nothing: servers
    started after it read the version; `cardgame content load` changes it under running ones."""
    from servers.common.content import ContentError, migrate_and_load

    if not settings.database.url:
        print("set DATABASE_URL (or [database] url) to migrate", file=sys.stderr)
        return 2
    try:
        applied, outcome = asyncio.run(migrate_and_load(settings.database.url))
    except ContentError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    for name in applied or ["(nothing to apply)"]:
        print(name)
    print(f"catalogue {outcome}")
    return 0


def content_load_cmd(settings: Settings, path: Path) -> int:
    """Validate the catalogue file, load it as a version (one transaction), then announce the
    current version, also when nothing changed: running it again repairs a lost announcement."""
    from servers.common import bus
    from servers.common.content import ContentError, announce, load_url, read_catalogue
    from servers.common.keys import Keys

    if not settings.database.url:
        print("set DATABASE_URL (or [database] url) to load content", file=sys.stderr)
        return 2
    try:
        catalogue = read_catalogue(path)
        outcome = asyncio.run(load_url(settings.database.url, catalogue))
    except ContentError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 2
    print(outcome)

    async def publish() -> None:
        redis = bus.connect_redis(settings.redis.url)
        try:
            await announce(redis, Keys(settings.redis.namespace), outcome.version)
        finally:
            await redis.aclose()

    try:
        asyncio.run(publish())
    except Exception as exc:  # the version is committed: say so, and what did not happen
        print(
            f"version {outcome.version} is current, but announcing it on Redis failed ({exc}):"
            " run this again once Redis answers, or game servers learn it when they restart",
            file=sys.stderr,
        )
        return 1
    return 0


def prune_cmd(settings: Settings, older_than: str, dry_run: bool) -> int:
    """`cardgame db prune`: drop the match partitions wholly older than the given age."""
    from servers.common import retention
    from servers.common.db import create_pool

    try:
        age = retention.parse_age(older_than)
    except retention.BadAge as exc:
        print(f"cardgame db prune: --older-than: {exc}", file=sys.stderr)
        return 2
    if not settings.database.url:
        print("set DATABASE_URL (or [database] url) to prune", file=sys.stderr)
        return 2

    async def run() -> retention.PruneReport:
        pool = await create_pool(settings.database.url, 1, 1)
        try:
            return await retention.prune(pool, age, dry_run=dry_run)
        finally:
            await pool.close()

    for line in retention.describe(asyncio.run(run())):
        print(line)
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
    tools = development_tools()
    parser = argparse.ArgumentParser(prog="cardgame", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    s = sub.add_parser("serve", help="run one server process (settings from config + env)")
    s.add_argument("kind", choices=[*SERVE_KINDS, *(tools.SERVE_KINDS if tools else ())])
    sub.add_parser(
        "migrate", help="apply database migrations to DATABASE_URL, then load the card catalogue"
    )
    ct = sub.add_parser("content", help="game content kept in the repository (content/)")
    ct_sub = ct.add_subparsers(dest="content_command", required=True)
    cl = ct_sub.add_parser(
        "load", help="load the card catalogue as a new version and announce it to game servers"
    )
    cl.add_argument("--file", type=Path, default=None, help="default: content/cards.toml")
    dbp = sub.add_parser("db", help="database upkeep").add_subparsers(dest="db", required=True)
    pr = dbp.add_parser(
        "prune",
        help="drop the match history partitions (whole months) older than an age;"
        " never ratings, profiles, players, decks or collections",
    )
    pr.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 180d or 26w")
    pr.add_argument("--dry-run", action="store_true", help="say what would go; drop nothing")
    sc = sub.add_parser("schema", help="print the client protocol's JSON Schema")
    sc.add_argument("--write", metavar="PATH", help="write it to PATH instead")
    oa = sub.add_parser("openapi", help="print the auth server's OpenAPI description")
    oa.add_argument("--write", metavar="PATH", help="write it to PATH instead")
    if tools is not None:
        tools.add_parsers(sub)
    args = parser.parse_args(argv)

    logging.basicConfig(
        level=os.environ.get("CARDGAME_LOG_LEVEL", "INFO"),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    if args.command == "schema":
        return schema_cmd(args.write)
    if args.command == "openapi":
        return openapi_cmd(args.write)
    settings = load_settings()
    if args.command == "serve":
        from servers.common import logs

        logs.configure(
            settings.log.format,
            os.environ.get("CARDGAME_LOG_LEVEL", settings.log.level),
            settings.pod_id if args.kind in ("game", "match") else None,
            args.kind,
        )
        if args.kind in SERVE_KINDS:
            serve(args.kind, settings)
        else:
            assert tools is not None  # argparse offered the kind only then
            tools.serve(args.kind, settings)
        return 0
    if args.command == "migrate":
        return migrate_cmd(settings)
    if args.command == "content":
        from servers.common.content import CARDS_FILE

        return content_load_cmd(settings, args.file or CARDS_FILE)
    if args.command == "db":
        return prune_cmd(settings, args.older_than, args.dry_run)
    assert tools is not None  # argparse offered no other command without them
    result: int = tools.run(args, sys.argv[1:] if argv is None else argv, settings)
    return result


if __name__ == "__main__":
    sys.exit(main())
