"""Match servers against a real Redis: requests, replies, and several servers on one queue."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter

import msgspec
import redis.asyncio as aioredis

from servers.common import bus
from servers.common import protocol as p
from servers.common.errors import ErrorCode
from servers.common.keys import MATCH_GROUP, GameMode, Keys
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


def enqueue(player_id: str, pod_id: str, mode: str = "normal") -> p.EnqueueRequest:
    return p.EnqueueRequest(
        request_id=uuid.uuid4().hex,
        player_id=player_id,
        game_mode=mode,
        pod_id=pod_id,
        metadata=snapshot(player_id, pod_id),
        enqueued_at_ms=0,
    )


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
                await asyncio.sleep(0.02)

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


async def test_three_match_servers_match_everyone_exactly_once(
    redis: aioredis.Redis, keys: Keys
) -> None:
    pods = ["pod-a", "pod-b", "pod-c"]
    listener = Listener(redis, keys, pods)
    await listener.ready.wait()
    _, tasks = start_servers(redis, keys, 3)
    try:
        players = [f"{1000 + i}" for i in range(600)]
        for i, player in enumerate(players):
            await bus.stream_add(redis, keys.enqueue_requests, enqueue(player, pods[i % 3]))
        await listener.until(lambda: len(listener.battles) == 300)
        await asyncio.sleep(0.2)  # anything extra (a double match) would arrive by now
    finally:
        await stop_all(tasks)
        await listener.stop()
    # The battles themselves are in the stream, each player in exactly one.
    entries = await redis.xrange(keys.battles(GameMode.NORMAL))
    battles = [msgspec.json.decode(f[b"m"], type=p.BattleRequest) for _, f in entries]
    in_battles = Counter(c.player_id for b in battles for c in (b.player1, b.player2))
    assert len(battles) == 300
    assert set(in_battles) == set(players) and set(in_battles.values()) == {1}
    assert {n.match_id for n in listener.battles} == {b.match_id for b in battles}
    kinds = Counter(type(r.result).__name__ for r in listener.results)
    assert kinds == {"ResultEnQueued": 600, "ResultMatchFound": 600}
    # MatchFound went to each player's own pod channel, naming the battle's opponent.
    for battle in battles:
        assert battle.player1.player_id != battle.player2.player_id
        for c in (battle.player1, battle.player2):
            assert c.pod_id == pods[(int(c.player_id) - 1000) % 3]
    assert await redis.zcard(keys.queue(GameMode.NORMAL)) == 0
    assert await redis.zcard(keys.inflight(GameMode.NORMAL)) == 0
    assert await redis.hlen(keys.tickets(GameMode.NORMAL)) == 0


async def test_request_errors_are_answered(redis: aioredis.Redis, keys: Keys) -> None:
    listener = Listener(redis, keys, ["pod-a"])
    await listener.ready.wait()
    _, tasks = start_servers(redis, keys, 1, tick=60)  # no TryMatch during this test
    try:
        await asyncio.sleep(0.1)  # let the startup tick pass
        first = enqueue("7", "pod-a")
        await bus.stream_add(redis, keys.enqueue_requests, first)
        await listener.until(lambda: len(listener.results) == 1)
        again = enqueue("7", "pod-a")
        await bus.stream_add(redis, keys.enqueue_requests, again)
        ghost = p.DequeueRequest(request_id="g", player_id="8", game_mode="normal", pod_id="pod-a")
        await bus.stream_add(redis, keys.dequeue_requests, ghost)
        await bus.stream_add(redis, keys.enqueue_requests, enqueue("9", "pod-a", mode="chess"))
        await listener.until(lambda: len(listener.results) == 4)
        leave = p.DequeueRequest(request_id="l", player_id="7", game_mode="normal", pod_id="pod-a")
        await bus.stream_add(redis, keys.dequeue_requests, leave)
        await listener.until(lambda: len(listener.results) == 5)
    finally:
        await stop_all(tasks)
        await listener.stop()
    by_request = {r.request_id: r.result for r in listener.results}
    assert isinstance(by_request[first.request_id], p.ResultEnQueued)
    assert by_request[again.request_id].code is ErrorCode.ALREADY_QUEUED  # type: ignore[union-attr]
    assert by_request["g"].code is ErrorCode.NOT_QUEUED  # type: ignore[union-attr]
    unknown = [r for r in listener.results if r.player_id == "9"][0].result
    assert unknown.code is ErrorCode.UNKNOWN_MODE  # type: ignore[union-attr]
    assert by_request["l"] == p.ResultDequeued(reason="requested")
    assert await redis.zcard(keys.queue(GameMode.NORMAL)) == 0


async def test_poisoned_entry_is_dropped_and_odd_player_keeps_place(
    redis: aioredis.Redis, keys: Keys
) -> None:
    metrics = MatchMetrics()
    mm = Matchmaking(redis, keys, 64, metrics)
    good = [snapshot(str(i), "pod-a") for i in (1, 2, 3)]
    for score, snap in enumerate(good, start=10):
        await mm.scripts.enqueue(
            GameMode.NORMAL, snap.player_id, score, msgspec.json.encode(snap), "pod-a"
        )
    await mm.scripts.enqueue(GameMode.NORMAL, "666", 5, b"not json", "pod-a")
    formed = await mm.tick()
    assert formed == 1
    assert metrics.poisoned.labels("normal")._value.get() == 1
    # 1 and 2 were paired; 3 is back with its original enqueue time.
    assert await redis.zrange(keys.queue(GameMode.NORMAL), 0, -1, withscores=True) == [(b"3", 12)]
    assert await redis.xlen(keys.battles(GameMode.NORMAL)) == 1
    assert await redis.hkeys(keys.tickets(GameMode.NORMAL)) == [b"3"]  # the poisoned one is gone
