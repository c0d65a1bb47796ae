"""The match server's watchdog against a real Redis: dead pods' players dequeued, maintenance
while no game server listens."""

from __future__ import annotations

import asyncio
import time

import redis.asyncio as aioredis

from servers.common import protocol as p
from servers.common import queueing
from servers.common.config import Settings
from servers.common.errors import ErrorCode
from servers.common.keys import GameMode, Keys
from servers.match.loop import Matchmaking
from servers.match.metrics import MatchMetrics
from servers.match.watchdog import Watchdog
from tests.support.helpers import eventually
from tests.support.match_servers import enqueue as enqueue_request
from tests.support.match_servers import hold

NORMAL = GameMode.NORMAL


async def test_watchdog_dequeues_only_the_dead_pods_players(
    redis: aioredis.Redis, keys: Keys, settings: Settings
) -> None:
    from servers.common.heartbeat import Heartbeat, beat

    mm = Matchmaking(redis, keys, 64, MatchMetrics())
    for player, pod in (("1", "pod-a"), ("2", "pod-b"), ("3", "pod-a"), ("4", "pod-b")):
        epoch = await hold(redis, keys, player, pod)
        await mm.on_enqueue(p.encode(enqueue_request(player, pod, epoch=epoch)))
    now = time.time()
    for pod in ("pod-a", "pod-b"):
        await beat(
            redis,
            keys,
            Heartbeat(pod_id=pod, role="game", pid=1, started_at=now, at=now, stats={}),
            ttl=60,
        )
    await redis.delete(keys.heartbeat("pod-b", "game"))  # pod-b's game server died
    watchdog = Watchdog(redis, keys, mm, settings.replace(game={"reconnect_grace": 0.0}))
    await watchdog.check_pods()
    await watchdog.check_pods()
    remaining = await redis.zrange(keys.queue(NORMAL), 0, -1)
    assert sorted(remaining) == [b"1", b"3"]
    assert watchdog.players_removed == 2
    # Free again, told at their next welcome.
    assert await redis.hmget(keys.player("2"), ["act", "notice"]) == [
        b"idle",
        b'{"type":"dequeued","mode":"normal","reason":"server","id":null}',
    ]


async def test_no_game_server_means_maintenance(
    redis: aioredis.Redis, keys: Keys, settings: Settings
) -> None:
    fast = settings.replace(
        match={"numsub_check_interval": 0.05, "numsub_failures": 3},
        pods={"heartbeat_interval": 0.05},
    )
    mm = Matchmaking(redis, keys, 64, MatchMetrics())
    for player in ("1", "2", "3"):
        epoch = await hold(redis, keys, player, "pod-a")
        await mm.on_enqueue(msgspec_encode(enqueue_request(player, "pod-a", epoch=epoch)))
    watchdog = Watchdog(redis, keys, mm, fast)
    task = asyncio.create_task(watchdog.run())
    try:

        async def in_maintenance() -> bool:
            return mm.maintenance

        await eventually(in_maintenance, timeout=5)
        assert await redis.zcard(keys.queue(NORMAL)) == 0  # everyone removed, Redis only
        assert await redis.get(keys.maintenance_flag) == b"auto"
        assert 0 < await redis.ttl(keys.maintenance_flag) <= 300
        assert not watchdog.game_servers_ok
        # The enqueue script itself refuses while the flag is set, whoever runs it.
        epoch = await hold(redis, keys, "4", "pod-a")
        answer = await queueing.enqueue(mm.scripts, "normal", "4", "pod-a", b"{}", epoch, 1)
        refused = answer.result
        assert isinstance(refused, p.ResultError) and refused.code is ErrorCode.MAINTENANCE
        assert await redis.zscore(keys.queue(NORMAL), "4") is None
        assert {await redis.hget(keys.player(pl), "act") for pl in "123"} == {b"idle"}

        # A game server subscribes again: maintenance ends by itself.
        pubsub = redis.pubsub()
        await pubsub.subscribe(keys.battle_request)

        async def back() -> bool:
            return not mm.maintenance and watchdog.game_servers_ok

        await eventually(back, timeout=5)
        assert await redis.exists(keys.maintenance_flag) == 0
        await pubsub.aclose()
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def msgspec_encode(message: p.EnqueueRequest) -> bytes:
    return p.encode(message)
