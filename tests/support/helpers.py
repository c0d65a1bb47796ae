"""Helpers for tests that drive a running stack through its real HTTP and WebSocket APIs."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from devtools.stack import Stack
from fake_client.client import GameClient, Login, login_dev, login_steam


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


async def eventually(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    """Wait until an async check returns True (state that settles across processes)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)
