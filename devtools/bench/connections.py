"""`cardgame bench connections --idle N`: server memory per idle WebSocket on one game server.

Starts a stack with one pod, warms the game server up with a few connections, then holds N idle
authenticated WebSockets (each has a session) and compares the game server's RSS before and
after. Tokens are issued locally with the stack's signing settings, so the auth server and
PostgreSQL are not part of the measurement. Measured with and without permessage-deflate offered
by the clients (the server keeps a compressor per connection when it is negotiated).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import httpx
import psutil
import websockets

from devtools.bench.procs import machine
from devtools.stack import Stack
from servers.common import protocol as p
from servers.common.config import load_settings
from servers.common.tokens import TokenService

FIRST_ID = 76561198000000000
WARMUP = 200


async def _open(url: str, tokens: list[str], compression: bool) -> list[Any]:
    limit = asyncio.Semaphore(200)

    async def one(token: str) -> Any:
        async with limit:
            ws = await websockets.connect(
                f"{url}?token={token}",
                open_timeout=60,
                compression="deflate" if compression else None,
            )
            welcome = p.decode_server(await ws.recv())
            assert isinstance(welcome, p.Welcome), welcome
            return ws

    return list(await asyncio.gather(*(one(t) for t in tokens)))


async def _connected(health_url: str, expected: int, timeout: float = 30) -> None:
    async with httpx.AsyncClient() as http:
        deadline = time.monotonic() + timeout
        while (await http.get(health_url)).json()["connected"] != expected:
            if time.monotonic() > deadline:
                raise RuntimeError(f"game server never reported {expected} connections")
            await asyncio.sleep(0.2)


async def _measure(stack: Stack, idle: int, compression: bool, first: int) -> dict[str, Any]:
    tokens = TokenService(stack.settings.auth)
    game = next(proc for proc in stack.procs if proc.name == "game-1")
    assert game.popen is not None
    server = psutil.Process(game.popen.pid)
    health = game.health_url
    issued = [tokens.issue(str(first + i), f"idle{i}")[0] for i in range(WARMUP + idle)]
    # Warm up (allocator arenas, code paths), then let those sessions go.
    warm = await _open(stack.game_urls[0], issued[:WARMUP], compression)
    await asyncio.gather(*(ws.close() for ws in warm))
    await _connected(health, 0)
    await asyncio.sleep(1.0)
    before = server.memory_info().rss
    sockets = await _open(stack.game_urls[0], issued[WARMUP:], compression)
    await _connected(health, idle)
    await asyncio.sleep(2.0)  # idle
    after = server.memory_info().rss
    await asyncio.gather(*(ws.close() for ws in sockets))
    return {
        "compression_offered": compression,
        "idle": idle,
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "kib_per_connection": round((after - before) / idle / 1024, 1),
    }


def bench_connections(idle: int) -> dict[str, Any]:
    settings = load_settings().replace(redis={"namespace": f"bench-{uuid.uuid4().hex[:6]}"})
    runs = []
    with Stack(settings, pods=1) as stack:
        for i, compression in enumerate((False, True)):
            runs.append(
                asyncio.run(_measure(stack, idle, compression, FIRST_ID + i * (idle + WARMUP)))
            )
    return {"idle": idle, "runs": runs, "machine": machine()}


def print_connections(result: dict[str, Any]) -> None:
    print(f"{result['idle']} idle WebSockets on one game server")
    for run in result["runs"]:
        deflate = "offered" if run["compression_offered"] else "not offered"
        print(
            f"  permessage-deflate {deflate:<12} rss {run['rss_before_mib']} ->"
            f" {run['rss_after_mib']} MiB   {run['kib_per_connection']} KiB per connection"
        )
