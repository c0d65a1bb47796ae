"""An asyncio stand-in for the Unity client: HTTP login, then one WebSocket to a game server."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx
import msgspec
import websockets

from servers.common import protocol as p
from servers.common.protocol import ServerError

M = TypeVar("M", bound=p.ServerMessage)


@dataclass(frozen=True)
class Login:
    player_id: str
    name: str
    access_token: str
    refresh_token: str = ""


RATE_LIMIT_RETRIES = 5  # a well-behaved client waits out Retry-After, a bounded number of times


async def _post_auth(http: httpx.AsyncClient, url: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST to the auth server; waits out HTTP 429/503 per Retry-After; errors raise."""
    response = await http.post(url, json=body)
    for _ in range(RATE_LIMIT_RETRIES):
        if response.status_code not in (429, 503) or "Retry-After" not in response.headers:
            break
        await asyncio.sleep(min(float(response.headers["Retry-After"]), 10.0))
        response = await http.post(url, json=body)
    data: dict[str, Any] = response.json()
    if response.status_code != 200:
        raise ServerError(data["error"]["code"], data["error"]["message"])
    return data


def _login(body: dict[str, Any]) -> Login:
    return Login(
        body["player_id"], body["name"], body["access_token"], body.get("refresh_token", "")
    )


async def login_dev(http: httpx.AsyncClient, auth_url: str, name: str) -> Login:
    return _login(await _post_auth(http, f"{auth_url}/login/dev", {"name": name}))


async def steam_ticket(
    http: httpx.AsyncClient, steam_sim_url: str, persona: str, **behaviour: Any
) -> str:
    """What the Unity client gets from GetAuthTicketForWebApi, from the Steam simulator: the
    same persona always has the same SteamID64. `behaviour`: vacbanned, ownersteamid, delay..."""
    response = await http.post(
        f"{steam_sim_url}/dev/tickets", json={"persona": persona, **behaviour}
    )
    response.raise_for_status()
    return str(response.json()["ticket"])


async def login_steam(
    http: httpx.AsyncClient, auth_url: str, steam_sim_url: str, name: str
) -> Login:
    """Log in as the Unity client does: a Steam ticket, verified by the auth server."""
    ticket = await steam_ticket(http, steam_sim_url, name)
    return _login(
        await _post_auth(http, f"{auth_url}/login/steam", {"ticket": ticket, "name": name})
    )


async def refresh(http: httpx.AsyncClient, auth_url: str, refresh_token: str) -> Login:
    return _login(
        await _post_auth(http, f"{auth_url}/token/refresh", {"refresh_token": refresh_token})
    )


class ProtocolViolation(Exception):
    """The server broke a promise of docs/protocol.md; `frames` are what it sent."""

    def __init__(self, what: str, frames: list[p.AnyServerMessage]) -> None:
        super().__init__(f"{what}: {', '.join(type(f).__name__ for f in frames)}")
        self.frames = frames


class GameClient:
    """One connection. `request` sends a message and waits for the reply that echoes its id;
    server pushes (match_found, battle_result, errors without id) are read with `next_push`."""

    def __init__(self, ws: Any, welcome: p.Welcome) -> None:
        self.ws = ws
        self.welcome = welcome
        self._ids = itertools.count(1)
        self._replies: dict[str, asyncio.Future[p.AnyServerMessage]] = {}
        self.pushes: asyncio.Queue[p.AnyServerMessage] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(
        cls,
        game_url: str,
        token: str,
        open_timeout: float = 10,
        headers: dict[str, str] | None = None,
    ) -> GameClient:
        ws = await websockets.connect(
            f"{game_url}?token={token}",
            open_timeout=open_timeout,
            max_size=2**24,
            additional_headers=headers,
        )
        return await cls.greeted(ws)

    @classmethod
    async def greeted(cls, ws: Any, timeout: float | None = None) -> GameClient:
        """A client on an open socket, once its first frame is the welcome (the protocol's
        promise); an error frame instead raises ServerError, anything else ProtocolViolation."""
        first = p.decode_server(await asyncio.wait_for(ws.recv(), timeout))
        if isinstance(first, p.Error):
            await ws.close()
            raise ServerError(first.code, first.message)
        if not isinstance(first, p.Welcome):
            await ws.close()
            raise ProtocolViolation("the first frame is not a welcome", [first])
        return cls(ws, first)

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                message = p.decode_server(frame)
                future = self._replies.pop(message.id, None) if message.id else None
                if future is not None and not future.done():
                    future.set_result(message)
                else:
                    self.pushes.put_nowait(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("connection closed"))

    async def request(self, message: p.ClientMessage, timeout: float = 10) -> p.AnyServerMessage:
        """Send and wait for the reply; an error reply raises ServerError."""
        ref = str(next(self._ids))
        message.id = ref
        future: asyncio.Future[p.AnyServerMessage] = asyncio.get_running_loop().create_future()
        self._replies[ref] = future
        await self.ws.send(p.encode(message).decode())
        reply = await asyncio.wait_for(future, timeout)
        if isinstance(reply, p.Error):
            raise ServerError(reply.code, reply.message)
        return reply

    async def send_raw(self, frame: str | bytes) -> None:
        await self.ws.send(frame)

    async def next_push(self, kind: type[M], timeout: float = 30) -> M:
        """The next pushed message; an error push raises ServerError, other kinds are skipped."""

        async def wait() -> M:
            while True:
                message = await self.pushes.get()
                if isinstance(message, kind):
                    return message
                if isinstance(message, p.Error):
                    raise ServerError(message.code, message.message)

        return await asyncio.wait_for(wait(), timeout)

    async def result_of(self, match_id: str, timeout: float = 30) -> p.BattleResultMessage:
        """The result of this match. A result already shown may come again after a reconnect
        (at least once, see docs/protocol.md): like any client, skip results of other matches."""

        async def wait() -> p.BattleResultMessage:
            while True:
                result = await self.next_push(p.BattleResultMessage, timeout)
                if result.match_id == match_id:
                    return result

        return await asyncio.wait_for(wait(), timeout)

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()
        await asyncio.gather(self._reader, return_exceptions=True)


def timeline_problems(result: p.BattleResultMessage) -> list[str]:
    """Check a battle result's timeline is well-formed: start, turns, end agreeing with winner."""
    from servers.common.timeline import BattleEnd, BattleStart, decode_timeline

    try:
        events = decode_timeline(p.timeline_bytes(result))
    except msgspec.DecodeError as exc:
        return [f"timeline does not decode: {exc}"]
    problems = []
    if not events or not isinstance(events[0], BattleStart):
        problems.append("timeline does not start with battle_start")
    if not events or not isinstance(events[-1], BattleEnd):
        problems.append("timeline does not end with battle_end")
    else:
        end = events[-1]
        if end.winner_id != result.winner_id:
            problems.append(f"battle_end winner {end.winner_id} != result {result.winner_id}")
        if end.turns != result.turns:
            problems.append(f"battle_end turns {end.turns} != result {result.turns}")
    return problems
