"""Shared fixtures: real Redis and PostgreSQL, isolated per test run, and a running 2-pod stack.

REDIS_URL / DATABASE_URL are used when given (the run then takes its own key namespace and its own
fresh database, so it can share servers with a running demo); otherwise private instances start.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import redis.asyncio as aioredis

from devtools.embedded import ServiceHandle, ensure_postgres, ensure_redis
from devtools.stack import Stack
from servers.common.bus import connect_redis
from servers.common.config import Settings, load_settings
from servers.common.content import migrate_and_load
from servers.common.db import create_pool
from servers.common.keys import GameMode, Keys

RUN = uuid.uuid4().hex[:8]


def _with_database(url: str, database: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def redis_service() -> Iterator[ServiceHandle]:
    handle = ensure_redis(os.environ.get("REDIS_URL") or None)
    yield handle
    handle.stop()


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh database for this run on the given or a private PostgreSQL, migrated."""
    handle = ensure_postgres(os.environ.get("DATABASE_URL") or None)
    name = f"cardgame_test_{RUN}"

    async def create() -> None:
        conn = await asyncpg.connect(handle.url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    async def drop() -> None:
        conn = await asyncpg.connect(handle.url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(create())
    url = _with_database(handle.url, name)
    asyncio.run(migrate_and_load(url))
    yield url
    asyncio.run(drop())
    handle.stop()


@pytest.fixture(scope="session")
def settings(redis_service: ServiceHandle, database_url: str) -> Settings:
    base = load_settings({})
    return base.replace(
        redis={"url": redis_service.url, "namespace": f"t{RUN}"},
        database={"url": database_url},
        # Ranked windows open fast: tests check flows, not match quality (the benchmark does).
        match={"tick_interval": 0.05, "ranked_window_growth": 200.0, "ranked_window_max": 100000.0},
        game={"match_reply_timeout": 3.0, "reconnect_grace": 0.5, "drain_deadline": 5.0},
        pods={"heartbeat_interval": 0.2, "heartbeat_ttl": 1.0},
    )


@pytest.fixture
def keys() -> Keys:
    """A namespace of its own for each test that talks to Redis directly."""
    return Keys(f"t{RUN}-{uuid.uuid4().hex[:6]}")


@pytest.fixture
async def redis(redis_service: ServiceHandle) -> AsyncIterator[aioredis.Redis]:
    client = connect_redis(redis_service.url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(database_url, 1, 5)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Stack]:
    """Auth server plus two pods, as real processes, for the whole run."""
    with Stack(settings, pods=2) as running:
        yield running


@pytest.fixture
def own_stack(settings: Settings) -> Iterator[Stack]:
    """A 2-pod stack of the test's own, in its own namespace: for tests that kill its processes
    or change what other tests rely on (maintenance, drains)."""
    mine = settings.replace(
        redis={"namespace": f"{settings.redis.namespace}-o{uuid.uuid4().hex[:8]}"}
    )
    with Stack(mine, pods=2) as running:
        yield running


@pytest.fixture(scope="session")
def edge_stack(settings: Settings) -> Iterator[Stack]:
    """A second stack for the front-door tests (Steam login, rate limits, fuzzing): two auth
    instances sharing limits, two pods (limits that follow a player across game servers), per-IP
    limits ON for every address (the main stack exempts loopback, as development does),
    127.0.0.1 trusted as a proxy so that tests choose client IPs with X-Forwarded-For, a high
    per-connection message limit (the WebSocket fuzzer sends fast), a strict Steam policy and
    short Steam timeouts. Started only by the tests that ask for it."""
    edge = settings.replace(
        redis={"namespace": f"t{RUN}-edge"},
        ratelimit={
            "exempt_networks": "",
            "trusted_proxies": "127.0.0.1/32",
            "ws_messages_per_s": 5000.0,
            "ws_message_burst": 5000,
        },
        steam={
            "timeout": 0.5,
            "retries": 1,
            "retry_backoff": 0.05,
            "deny_vac_banned": True,
            "deny_family_shared": True,
        },
    )
    with Stack(edge, pods=2, auth_instances=2) as running:
        yield running


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Record how many inputs each fuzzer tried and that the servers stayed up."""
    from tests.support.fuzz_report import COUNTS

    if COUNTS:
        terminalreporter.section("fuzzing")
        for name, figures in sorted(COUNTS.items()):
            detail = ", ".join(f"{key} {value}" for key, value in figures.items())
            terminalreporter.write_line(f"{name}: {detail}")


@pytest.fixture(autouse=True)
async def quiet_queues(request: pytest.FixtureRequest) -> None:
    """Tests on the shared stack start with empty queues: a player left by an earlier test (a
    Locust user, a socket in its reconnect grace) must not be paired with this test's players.
    Waits for that (a grace lasts 0.5 s here, a ticket at most 5 min) and fails the test when the
    queues are still not empty after 15 s: something earlier left players behind."""
    if "stack" not in request.fixturenames:
        return
    settings: Settings = request.getfixturevalue("settings")
    keys = Keys(settings.redis.namespace)
    client = connect_redis(settings.redis.url)
    try:
        names = [f"{kind} {mode.value}" for mode in GameMode for kind in ("queue", "in flight")]
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            async with client.pipeline(transaction=False) as pipe:
                for mode in GameMode:
                    pipe.zcard(keys.queue(mode))
                    pipe.zcard(keys.inflight(mode))
                sizes = await pipe.execute()
            if not any(sizes):
                return
            if asyncio.get_running_loop().time() > deadline:
                left = {name: size for name, size in zip(names, sizes, strict=True) if size}
                pytest.fail(f"the shared stack's queues are not empty after 15 s: {left}")
            await asyncio.sleep(0.1)  # polling pace
    finally:
        await client.aclose()
