"""Adversarial clients for `cardgame chaos --clients adversarial|mixed`.

Each one repeatedly picks a misbehaviour at random, against random pods:

* `two_pods`: the same player (same access token) on two pods at once;
* `two_modes`: `enqueue normal` on one socket and `enqueue ranked` on another, concurrently;
* `enqueue_dequeue` / `enqueue_close`: a dequeue, or closing the socket, right behind an enqueue;
* `pve_while_queued`: `start_pve` while queued, or while the enqueue is still in flight;
* `grace_reconnect`: drop the socket while queued and reconnect to another pod within the
  reconnect grace;
* `slow_reader`: stop reading the socket while sending allowed requests (under the per-connection
  message rate), then read again or go away.

Every server error and close code is expected: they are counted (`AdversaryStats.told`) and
never count as a lost player. A frame that breaks docs/protocol.md is counted apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import websockets
from websockets.asyncio.client import ClientConnection, connect
from websockets.protocol import State

from fake_client.client import GameClient, Login, ProtocolViolation
from servers.common import protocol as p
from servers.common.protocol import ServerError

SCENARIO_TIMEOUT = 20.0  # a scenario that hangs longer is abandoned (and counted)
REQUEST_TIMEOUT = 6.0  # above the servers' match_reply_timeout (5 s by default)


@dataclass
class AdversaryStats:
    scenarios: Counter[str] = field(default_factory=Counter)
    told: Counter[str] = field(default_factory=Counter)  # what the servers answered
    protocol_violations: list[str] = field(default_factory=list)

    def merge(self, other: AdversaryStats) -> None:
        self.scenarios.update(other.scenarios)
        self.told.update(other.told)
        self.protocol_violations.extend(other.protocol_violations)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scenarios": dict(self.scenarios),
            "told": dict(sorted(self.told.items())),
            "protocol_violations": len(self.protocol_violations),
        }


def outcome_of(result: object) -> str:
    """A short name for what one request got: the reply's type, an error code, a timeout..."""
    if isinstance(result, ServerError):
        return f"error:{result.code}"
    if isinstance(result, p.ServerMessage):
        return type(result).__name__
    if isinstance(result, websockets.ConnectionClosed):
        code = result.rcvd.code if result.rcvd is not None else None
        return f"closed:{code}"
    if isinstance(result, BaseException):
        return f"exc:{type(result).__name__}"
    return str(result)


def ignore_orphaned_replies() -> None:
    """Do not log the replies a closed socket failed: GameClient fails every pending reply
    when its socket closes, including that of a request whose send itself failed, which nobody
    awaits then. Expected of these clients; any other unhandled exception is logged as usual."""
    loop = asyncio.get_running_loop()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if isinstance(context.get("exception"), ConnectionError) and "future" in context:
            return
        loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


class Adversary:
    """One misbehaving player. `reconnect_grace` is the servers' (to reconnect within it)."""

    def __init__(
        self,
        login: Login,
        game_urls: list[str],
        rng: random.Random,
        reconnect_grace: float,
    ) -> None:
        self.login, self.game_urls, self.rng = login, game_urls, rng
        self.grace = reconnect_grace
        self.stats = AdversaryStats()
        self.open: list[GameClient] = []
        self.sockets: list[ClientConnection] = []

    # ------------------------------------------------------------ sockets
    def url(self, other_than: str | None = None) -> str:
        choices = [u for u in self.game_urls if u != other_than] or self.game_urls
        return self.rng.choice(choices)

    async def open_ws(self, url: str, **options: Any) -> ClientConnection:
        """A raw socket, remembered so that `abort_all` can drop it whatever happened."""
        ws = await connect(f"{url}?token={self.login.access_token}", open_timeout=3, **options)
        self.sockets.append(ws)
        return ws

    async def open_client(self, url: str) -> GameClient:
        """GameClient.connect, but every socket opened is remembered (a scenario cancelled
        while it waits for the welcome leaves nothing open behind it)."""
        ws = await self.open_ws(url, max_size=2**24)
        return await GameClient.greeted(ws, timeout=3)

    def abort_all(self) -> None:
        """Drop every socket still open (after the run: a cancelled close may leave one)."""
        for ws in self.sockets:
            if ws.state is not State.CLOSED:
                ws.transport.abort()
        self.sockets.clear()

    async def connect(self, url: str) -> GameClient | None:
        try:
            client = await self.open_client(url)
        except ProtocolViolation as exc:
            self.stats.protocol_violations.append(f"{url}: {exc}")
            return None
        except (
            OSError,
            websockets.WebSocketException,
            ServerError,
            TimeoutError,
            EOFError,
        ) as exc:
            self.stats.told[f"connect:{outcome_of(exc)}"] += 1
            return None
        self.stats.told[f"welcome:{client.welcome.state}"] += 1
        self.open.append(client)
        return client

    async def close(self, client: GameClient) -> None:
        with contextlib.suppress(Exception):
            await client.close()
        code = client.ws.close_code
        self.stats.told[f"close:{code}"] += 1
        if client in self.open:
            self.open.remove(client)

    async def close_all(self) -> None:
        for client in list(self.open):
            await self.close(client)

    async def request(self, client: GameClient, message: p.ClientMessage, what: str) -> object:
        try:
            reply: object = await client.request(message, timeout=REQUEST_TIMEOUT)
        except (ServerError, ConnectionError, TimeoutError, websockets.WebSocketException) as exc:
            reply = exc
        self.stats.told[f"{what}:{outcome_of(reply)}"] += 1
        return reply

    async def both(self, *calls: Awaitable[object]) -> list[object]:
        return list(await asyncio.gather(*calls, return_exceptions=True))

    # ------------------------------------------------------------ the misbehaviours
    async def two_pods(self) -> None:
        a = self.url()
        first, second = await self.both(self.connect(a), self.connect(self.url(other_than=a)))
        clients = [c for c in (first, second) if isinstance(c, GameClient)]
        await self.both(*(self.request(c, p.Ping(), "ping") for c in clients))
        if clients:
            chosen = self.rng.choice(clients)
            await self.request(chosen, p.Enqueue(mode="normal"), "enqueue")
            await self.request(chosen, p.Dequeue(), "dequeue")

    async def two_modes(self) -> None:
        a = self.url()
        one, two = await self.both(self.connect(a), self.connect(self.url(other_than=a)))
        clients = [c for c in (one, two) if isinstance(c, GameClient)]
        modes = ["normal", "ranked"]
        await self.both(
            *(
                self.request(c, p.Enqueue(mode=m), "enqueue")
                for c, m in zip(clients, modes, strict=False)
            )
        )
        await asyncio.sleep(self.rng.uniform(0.0, 1.0))  # queued for a while (or matched)
        await self.both(*(self.request(c, p.Dequeue(), "dequeue") for c in clients))

    async def enqueue_dequeue(self) -> None:
        client = await self.connect(self.url())
        if client is not None:
            mode = self.rng.choice(["normal", "ranked"])
            await self.both(
                self.request(client, p.Enqueue(mode=mode), "enqueue"),
                self.request(client, p.Dequeue(), "dequeue"),
            )

    async def enqueue_close(self) -> None:
        client = await self.connect(self.url())
        if client is not None:
            with contextlib.suppress(Exception):
                await client.send_raw(p.encode(p.Enqueue(mode="normal")).decode())
            await self.close(client)

    async def pve_while_queued(self) -> None:
        client = await self.connect(self.url())
        if client is None:
            return
        if self.rng.random() < 0.5:  # while the enqueue is in flight
            await self.both(
                self.request(client, p.Enqueue(mode="normal"), "enqueue"),
                self.request(client, p.StartPve(difficulty="easy"), "pve"),
            )
        else:  # once queued
            await self.request(client, p.Enqueue(mode="normal"), "enqueue")
            await self.request(client, p.StartPve(difficulty="easy"), "pve")
        await self.request(client, p.Dequeue(), "dequeue")

    async def grace_reconnect(self) -> None:
        url = self.url()
        client = await self.connect(url)
        if client is None:
            return
        await self.request(client, p.Enqueue(mode=self.rng.choice(["normal", "ranked"])), "enqueue")
        await self.close(client)
        await asyncio.sleep(self.rng.uniform(0.0, 0.6) * self.grace)
        again = await self.connect(self.url(other_than=url))
        if again is not None:
            await self.request(again, p.Dequeue(), "dequeue")

    async def slow_reader(self) -> None:
        """A raw socket (the client's reader would read for us) whose frames are left unread:
        the client library stops reading the TCP socket once its buffer is full."""
        url = self.url()
        try:
            ws = await self.open_ws(url, max_queue=2)
        except (OSError, websockets.WebSocketException, TimeoutError) as exc:
            self.stats.told[f"connect:{outcome_of(exc)}"] += 1
            return
        try:
            stop = time.monotonic() + self.rng.uniform(1.0, 4.0)
            while time.monotonic() < stop:
                request = self.rng.choice([p.GetCollection(), p.GetProfile(), p.Ping()])
                await asyncio.wait_for(ws.send(p.encode(request).decode()), 2)
                await asyncio.sleep(0.1)  # 10 requests/s: under the per-connection limit
            if self.rng.random() < 0.5:  # read again, then leave
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(2):
                        async for _ in ws:
                            pass
        except (websockets.WebSocketException, TimeoutError, OSError) as exc:
            self.stats.told[f"slow:{outcome_of(exc)}"] += 1
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 3)
            self.stats.told[f"close:{ws.close_code}"] += 1

    # ------------------------------------------------------------ the loop
    def scenarios(self) -> dict[str, Callable[[], Awaitable[None]]]:
        return {
            "two_pods": self.two_pods,
            "two_modes": self.two_modes,
            "enqueue_dequeue": self.enqueue_dequeue,
            "enqueue_close": self.enqueue_close,
            "pve_while_queued": self.pve_while_queued,
            "grace_reconnect": self.grace_reconnect,
            "slow_reader": self.slow_reader,
        }

    async def run(self, stop_at: float) -> None:
        scenarios = self.scenarios()
        names = sorted(scenarios)
        while time.monotonic() < stop_at:
            name = self.rng.choice(names)
            self.stats.scenarios[name] += 1
            try:
                await asyncio.wait_for(scenarios[name](), SCENARIO_TIMEOUT)
            except TimeoutError:
                self.stats.told[f"{name}:timeout"] += 1
            except (ConnectionError, OSError, websockets.WebSocketException) as exc:
                self.stats.told[f"{name}:{outcome_of(exc)}"] += 1
            finally:
                await self.close_all()
                self.sockets = [ws for ws in self.sockets if ws.state is not State.CLOSED]
            await asyncio.sleep(self.rng.uniform(0.05, 0.3))
