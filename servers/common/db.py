"""PostgreSQL: the asyncpg pool and the ordered, re-runnable migrations in `migrations/`."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import asyncpg
from asyncpg.pool import PoolConnectionProxy

log = logging.getLogger("cardgame.db")

# A connection to query on: one opened by itself, or one borrowed from a pool (`pool.acquire()`
# lends a proxy that behaves as a connection but is not a `Connection` subclass).
Connection = asyncpg.Connection | PoolConnectionProxy

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
# Any constant works: it only has to be the same for every process that migrates.
_MIGRATION_LOCK = 0x63617264  # "card"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


async def _keep_session(_conn: asyncpg.Connection) -> None:
    """Pool release without asyncpg's default reset query.

    The default runs `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on
    every release: one more round trip per borrow, 12 % of a game server's CPU under load
    (py-spy). Pooled connections here never take advisory locks, LISTEN, declare cursors or SET
    session state, so there is nothing to reset; asyncpg still rolls back a transaction left
    open and drops listeners before calling this.
    """


async def create_pool(url: str, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, command_timeout=30, reset=_keep_session
    )
    assert pool is not None
    return pool


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[tuple[int, Path]]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise ValueError(f"migration file name must look like 0001_name.sql: {path.name}")
        found.append((int(match.group(1)), path))
    versions = [v for v, _ in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {directory}")
    return found


async def migrate(url: str, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply pending migrations in order, each in its own transaction; returns those applied.

    An advisory lock serialises concurrent callers (several servers starting at once).
    """
    conn = await asyncpg.connect(url)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INT PRIMARY KEY, name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, path in migration_files(directory):
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    version,
                    path.name,
                )
            applied.append(path.name)
            log.info("applied migration %s", path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied
