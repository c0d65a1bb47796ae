"""Match servers run in the test's event loop against a real Redis, and what they publish: for
the tests of the match loop, the watchdog and the Ranked and Party queues."""

from __future__ import annotations

import asyncio
import time
import uuid

import msgspec
import redis.asyncio as aioredis

from servers.common import bus
from servers.common import protocol as p
from servers.common.keys import MATCH_GROUP, GameMode, Keys
from servers.common.lua import Enqueued, PlayerScripts, QueueScripts
from servers.common.models import BattleSnapshot, CardSnapshot
from servers.match.loop import Matchmaking
from servers.match.metrics import MatchMetrics

DECK = tuple(
    CardSnapshot(card_id=i % 10 + 1, name=f"c{i}", cost=1, attack=1, health=2) for i in range(20)
)


def snapshot(player_id: str, pod_id: str) -> BattleSnapshot:
    return BattleSnapshot(
        player_id=player_id, name=f"n{player_id}", level=1, rating=1500.0, deck=DECK, pod_id=pod_id
    )


def enqueue(player_id: str, pod_id: str, mode: str = "normal", epoch: int = 1) -> p.EnqueueRequest:
    """A game server's request for the connection holding `epoch` (see `hold`)."""
    return p.EnqueueRequest(
        request_id=uuid.uuid4().hex,
        player_id=player_id,
        game_mode=mode,
        pod_id=pod_id,
        metadata=snapshot(player_id, pod_id),
        enqueued_at_ms=0,
        epoch=epoch,
    )


async def hold(redis: aioredis.Redis, keys: Keys, player_id: str, pod_id: str = "pod-a") -> int:
    """A connection on `pod_id` takes the player, as a game server's attach does; its epoch."""
    attached = await PlayerScripts(redis, keys).attach(player_id, pod_id, int(time.time() * 1000))
    return attached.epoch


async def queue_player(
    redis: aioredis.Redis,
    keys: Keys,
    mode: GameMode,
    player_id: str,
    score: int,
    ticket: bytes,
    pod_id: str = "pod-a",
) -> Enqueued:
    """Queue a player directly (attach, then enqueue.lua), as a match server does for a game
    server's request."""
    epoch = await hold(redis, keys, player_id, pod_id)
    return await QueueScripts(redis, keys).enqueue(mode, player_id, score, ticket, epoch)


class Listener:
    """Collects everything published on the pods' result channels and battle:request."""

    def __init__(self, redis: aioredis.Redis, keys: Keys, pods: list[str]) -> None:
        self.results: list[p.MatchResult] = []
        self.battles: list[p.BattleNotice] = []
        self.keys = keys
        self.ready = asyncio.Event()
        channels = [keys.match_result(pod) for pod in pods] + [keys.battle_request]
        self.task = asyncio.create_task(bus.run_subscriber(redis, channels, self.on, self.ready))

    async def on(self, channel: str, data: bytes) -> None:
        if channel == self.keys.battle_request:
            self.battles.append(msgspec.json.decode(data, type=p.BattleNotice))
        else:
            self.results.append(msgspec.json.decode(data, type=p.MatchResult))

    async def until(self, condition, timeout: float = 15.0) -> None:  # type: ignore[no-untyped-def]
        async def poll() -> None:
            while not condition():
                await asyncio.sleep(0.02)  # polling pace (bounded by wait_for)

        await asyncio.wait_for(poll(), timeout)

    async def stop(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


def start_servers(
    redis: aioredis.Redis, keys: Keys, count: int, tick: float = 0.02, batch: int = 64
) -> tuple[list[Matchmaking], list[asyncio.Task[None]]]:
    servers, tasks = [], []
    for i in range(count):
        mm = Matchmaking(redis, keys, batch, MatchMetrics())
        servers.append(mm)
        consumer = f"m{i}"
        tasks += [
            asyncio.create_task(
                bus.run_stream_consumer(
                    redis, keys.enqueue_requests, MATCH_GROUP, consumer, mm.on_enqueue
                )
            ),
            asyncio.create_task(
                bus.run_stream_consumer(
                    redis, keys.dequeue_requests, MATCH_GROUP, consumer, mm.on_dequeue
                )
            ),
            asyncio.create_task(mm.run_ticks(tick)),
        ]
    return servers, tasks


async def stop_all(tasks: list[asyncio.Task[None]]) -> None:
    """Cancel the servers' loops; each must stop (a loop that swallowed its cancel would hang
    a server's shutdown: fail clearly instead of waiting for the test timeout)."""
    for task in tasks:
        task.cancel()
    _, pending = await asyncio.wait(tasks, timeout=10)
    assert not pending, f"loops that ignored their cancellation: {pending}"


def ticket(player: str, rating: float = 1500.0, party: str = "") -> bytes:
    return p.encode(
        BattleSnapshot(
            player_id=player,
            name=f"n{player}",
            level=1,
            rating=rating,
            deck=DECK,
            pod_id="pod-a",
            party_code=party,
        )
    )


async def fill_ranked(
    redis: aioredis.Redis, keys: Keys, ratings: dict[str, float], waited_s: float
) -> None:
    score = int(time.time() * 1000) - int(waited_s * 1000)
    for player, rating in ratings.items():
        await queue_player(redis, keys, GameMode.RANKED, player, score, ticket(player, rating))
