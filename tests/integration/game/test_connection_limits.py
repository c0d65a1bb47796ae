"""What one WebSocket may cost the game server, driven by hostile clients over real sockets:
a client that stops reading, a crowd of flooders, a reconnect while a result is in flight."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import psutil
import pytest
import websockets

from devtools.stack import Stack
from fake_client.client import GameClient
from servers.common import protocol as p
from servers.common.config import Settings
from tests.support.helpers import connect, eventually, login

MAX_UNSENT = 64 * 1024
GRACE = 1.0


@pytest.fixture(scope="module")
def limited_stack(settings: Settings) -> Iterator[Stack]:
    """One pod with a small unsent-bytes limit and a short grace, so that a slow reader is
    dropped in seconds; messages per connection are generous so that a client can fill its
    socket quickly, and the flood close still applies."""
    tight = settings.replace(
        game={"max_unsent_bytes": MAX_UNSENT, "slow_consumer_grace": GRACE},
        ratelimit={"ws_messages_per_s": 500.0, "ws_message_burst": 500},
    )
    with Stack(tight, pods=1) as running:
        yield running


def game_process(stack: Stack) -> psutil.Process:
    popen = stack.proc("game-1").popen
    assert popen is not None
    return psutil.Process(popen.pid)


def game_port(stack: Stack) -> int:
    return int(stack.game_urls[0].rsplit(":", 1)[1].split("/")[0])


def _sockets(server: psutil.Process, port: int) -> list[str]:
    """The server's own sockets on `port` but the listening one (established, CLOSE-WAIT: a
    peer's FIN never read, ...): each holds a descriptor."""
    return [
        conn.status
        for conn in server.net_connections(kind="tcp")
        if conn.laddr and conn.laddr.port == port and conn.status != psutil.CONN_LISTEN
    ]


async def dropped(stack: Stack, reason: str) -> float:
    """cardgame_ws_dropped_total{reason} as the game server's /metrics reports it."""
    http_url = stack.game_urls[0].replace("ws://", "http://").removesuffix("/ws")
    async with httpx.AsyncClient(timeout=5) as http:
        text = (await http.get(f"{http_url}/metrics")).text
    found = re.search(rf'^cardgame_ws_dropped_total{{reason="{reason}"}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_a_client_that_stops_reading_is_dropped_and_costs_bounded_memory(
    limited_stack: Stack,
) -> None:
    who = await login(limited_stack)
    server = game_process(limited_stack)
    before = await dropped(limited_stack, "SLOW_CONSUMER")
    ping = json.dumps({"type": "ping", "id": "i" * 15000})  # each reply echoes 15 kB
    async with websockets.connect(
        f"{limited_stack.game_urls[0]}?token={who.access_token}", compression=None
    ) as ws:
        await ws.recv()  # welcome
        ws.transport.pause_reading()  # from here on the client reads nothing
        rss_start = server.memory_info().rss
        sent = 0
        with pytest.raises((websockets.ConnectionClosed, OSError, TimeoutError)):
            async with asyncio.timeout(30):
                while True:  # until the server drops the socket (or stops reading it)
                    await asyncio.wait_for(ws.send(ping), GRACE * 5)
                    sent += 1
        growth = server.memory_info().rss - rss_start

    async def counted() -> bool:
        return await dropped(limited_stack, "SLOW_CONSUMER") == before + 1

    await eventually(counted, 10, what="one more SLOW_CONSUMER drop counted")
    assert sent > MAX_UNSENT // 15000  # the client really piled replies up
    # Kernel buffers and the receive queue aside, the server held about MAX_UNSENT for it.
    assert growth < 20 * 1024 * 1024, f"RSS grew by {growth / 1e6:.1f} MB"
    # Everyone else is still served.
    client = await connect(limited_stack)
    assert isinstance(await client.request(p.Ping()), p.Pong)
    await client.close()


async def _flood(url: str, reads: bool) -> int | None:
    """Send pings as fast as the socket takes them until the server closes it; a flooder that
    `reads` also takes the server's frames (and so sees the close code)."""
    frame = json.dumps({"type": "ping", "id": "f"})
    async with websockets.connect(url, compression=None) as ws:
        await ws.recv()
        reader = asyncio.create_task(_read_all(ws)) if reads else None
        try:
            while True:
                await ws.send(frame)
                if reads:  # a send that need not wait does not yield: let the reader run
                    await asyncio.sleep(0)
        except websockets.ConnectionClosed:
            return ws.close_code
        finally:
            if reader is not None:
                await reader


async def _read_all(ws: websockets.ClientConnection) -> None:
    with contextlib.suppress(websockets.ConnectionClosed):
        async for _ in ws:
            pass


@pytest.mark.parametrize("reads", [True, False], ids=["reading", "not-reading"])
async def test_simultaneous_flooders_leave_no_socket_or_descriptor_behind(
    limited_stack: Stack, reads: bool
) -> None:
    server = game_process(limited_stack)
    port = game_port(limited_stack)
    pools = _pool_ports(limited_stack)
    warm = await connect(limited_stack)
    await warm.close()

    async def no_sockets() -> bool:
        return not _sockets(server, port)

    await eventually(no_sockets, 10, what="the warm-up socket closed")
    baseline = _own_fds(server, pools)
    logins = [await login(limited_stack) for _ in range(20)]
    urls = [f"{limited_stack.game_urls[0]}?token={who.access_token}" for who in logins]
    codes = await asyncio.wait_for(asyncio.gather(*(_flood(url, reads) for url in urls)), 60)
    # A flooder that reads is told why (4429); one that does not cannot read the close frame
    # and is dropped.
    if reads:
        assert codes == [4429] * 20
    else:
        assert len(codes) == 20 and set(codes) <= {4429, 1006}

    async def settled() -> bool:
        return not _sockets(server, port) and _own_fds(server, pools) <= baseline

    # A closing handshake a flooder never answers ends within the close timeouts (2 + 5 s).
    await eventually(settled, 30, what="no socket left and the descriptors back at the baseline")


def _pool_ports(stack: Stack) -> set[int]:
    """Ports of the Redis and PostgreSQL servers, whose pooled connections may grow with load."""
    urls = (stack.settings.redis.url, stack.settings.database.url)
    return {urlsplit(url).port or 0 for url in urls}


def _own_fds(server: psutil.Process, pools: set[int]) -> int:
    """The server's descriptors, less its pooled Redis and PostgreSQL connections."""
    pooled = sum(
        1 for conn in server.net_connections(kind="tcp") if conn.raddr and conn.raddr.port in pools
    )
    return server.num_fds() - pooled


async def test_welcome_comes_first_when_reconnecting_while_a_result_is_in_flight(
    limited_stack: Stack,
) -> None:
    url = limited_stack.game_urls[0]
    for _ in range(5):
        a, b = await login(limited_stack), await login(limited_stack)
        first = await GameClient.connect(url, a.access_token)
        second = await GameClient.connect(url, b.access_token)
        await first.request(p.Enqueue(mode="normal"))
        await second.request(p.Enqueue(mode="normal"))
        await first.next_push(p.MatchFound)
        # The battle runs now; its result may reach the session while the socket reattaches.
        await first.ws.close()
        async with websockets.connect(f"{url}?token={a.access_token}") as ws:
            frames = [p.decode_server(await ws.recv())]
            if isinstance(frames[0], p.Welcome) and frames[0].state == "in_battle":
                frames.append(p.decode_server(await asyncio.wait_for(ws.recv(), 15)))
        assert isinstance(frames[0], p.Welcome), frames
        assert all(not isinstance(f, p.Welcome) for f in frames[1:])
        await second.next_push(p.BattleResultMessage)
        await second.close()
        await first.close()
