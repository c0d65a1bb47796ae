"""Helpers for tests that drive a running stack through its real HTTP and WebSocket APIs, wait for
state that settles across processes, and check the errors the servers answer with."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from devtools.stack import Stack
from fake_client.client import GameClient, Login, login_dev, login_steam
from servers.common.errors import ErrorCode, GameError
from servers.common.protocol import ProtocolError, ServerError


def unique_name(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def login(stack: Stack, name: str | None = None) -> Login:
    """Log in as the client does: a ticket from the Steam simulator, verified by the auth
    server (development login when the stack has no simulator)."""
    async with httpx.AsyncClient(timeout=10) as http:
        if stack.steam_sim_url:
            return await login_steam(
                http, stack.auth_url, stack.steam_sim_url, name or unique_name()
            )
        return await login_dev(http, stack.auth_url, name or unique_name())


async def connect(stack: Stack, pod: int = 0, name: str | None = None) -> GameClient:
    who = await login(stack, name)
    return await GameClient.connect(stack.game_urls[pod], who.access_token)


async def eventually(
    check: Callable[[], Awaitable[bool]], timeout: float = 5.0, what: str = "condition"
) -> None:
    """Wait until an async check returns True (state that settles across processes); fail the
    test, naming `what`, when it is not reached within `timeout` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{what} not reached in {timeout} s")
        await asyncio.sleep(0.05)  # polling pace


async def stream_drained(redis: aioredis.Redis, stream: str, group: str) -> bool:
    """Every entry of a request stream has been handled: its consumers ack and delete each entry
    once handled (servers.common.bus.run_stream_consumer), so nothing is left in the stream and
    nothing is pending in the group."""
    if await redis.xlen(stream):
        return False
    try:
        pending = await redis.xpending(stream, group)
    except ResponseError as exc:  # no group yet: no consumer has started
        if "NOGROUP" in str(exc):
            return False
        raise
    return pending["pending"] == 0


@contextmanager
def expect_error(
    *codes: ErrorCode,
) -> Iterator[pytest.ExceptionInfo[ServerError | GameError | ProtocolError]]:
    """The block must fail with an error carrying one of `codes`: a ServerError (the error reply a
    client gets), a GameError (raised inside a server) or a ProtocolError (a frame the server
    could not decode). Yields pytest's ExceptionInfo, whose
    `.value.message` a test may check further.

        with expect_error(ErrorCode.NOT_QUEUED):
            await client.request(p.Dequeue())
    """
    assert codes, "name the expected code"
    with pytest.raises((ServerError, GameError, ProtocolError)) as caught:
        yield caught
    assert caught.value.code in codes, f"expected {' or '.join(codes)}, got {caught.value!r}"
