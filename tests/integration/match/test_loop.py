"""Match servers against a real Redis: requests, replies, and several servers on one queue."""

from __future__ import annotations

import time
from collections import Counter

import msgspec
import redis.asyncio as aioredis

from servers.common import bus
from servers.common import protocol as p
from servers.common.errors import ErrorCode
from servers.common.keys import MATCH_GROUP, GameMode, Keys
from servers.match.loop import Matchmaking
from servers.match.metrics import MatchMetrics
from tests.support.helpers import eventually, stream_drained
from tests.support.match_servers import (
    Listener,
    enqueue,
    hold,
    queue_player,
    snapshot,
    start_servers,
    stop_all,
)


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
            epoch = await hold(redis, keys, player, pods[i % 3])
            await bus.stream_add(
                redis, keys.enqueue_requests, enqueue(player, pods[i % 3], epoch=epoch)
            )
        await listener.until(lambda: len(listener.battles) == 300)

        async def settled() -> bool:
            """Every request handled, nobody waiting or being paired: no further battle can be
            formed, so a double match would already be in the battle stream."""
            return (
                await stream_drained(redis, keys.enqueue_requests, MATCH_GROUP)
                and await redis.zcard(keys.queue(GameMode.NORMAL)) == 0
                and await redis.zcard(keys.inflight(GameMode.NORMAL)) == 0
            )

        await eventually(settled, timeout=15, what="requests handled and the queue empty")
        # Each player's EnQueued and MatchFound (published after the commit) has arrived.
        await listener.until(lambda: len(listener.results) >= 1200)
    finally:
        await stop_all(tasks)
        await listener.stop()
    # The battles themselves are in the stream, each player in exactly one.
    entries = await redis.xrange(keys.battles(GameMode.NORMAL))
    battles = [msgspec.json.decode(f[b"m"], type=p.BattleRequest) for _, f in entries]
    in_battles = Counter(c.player_id for b in battles for c in (b.player1, b.player2))
    assert len(battles) == 300
    # Each carries when it was formed: its match records' partition key.
    assert all(0 < b.formed_at_ms <= time.time() * 1000 for b in battles)
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
    servers, tasks = start_servers(redis, keys, 1, tick=60)  # no TryMatch during this test
    try:
        # The first TryMatch tick runs at start-up (the next one in 60 s): wait until it ran.
        tick_count = "cardgame_trymatch_tick_seconds_count"

        async def ticked() -> bool:
            return (servers[0].metrics.registry.get_sample_value(tick_count) or 0) >= 1

        await eventually(ticked, timeout=5, what="the start-up tick")
        first = enqueue("7", "pod-a", epoch=await hold(redis, keys, "7"))
        await bus.stream_add(redis, keys.enqueue_requests, first)
        await listener.until(lambda: len(listener.results) == 1)
        again = enqueue("7", "pod-a", epoch=first.epoch)
        await bus.stream_add(redis, keys.enqueue_requests, again)
        ghost = p.DequeueRequest(request_id="g", player_id="8", game_mode="normal", pod_id="pod-a")
        await bus.stream_add(redis, keys.dequeue_requests, ghost)
        await bus.stream_add(redis, keys.enqueue_requests, enqueue("9", "pod-a", mode="chess"))
        stale = enqueue("10", "pod-a", mode="ranked", epoch=await hold(redis, keys, "10"))
        await hold(redis, keys, "10", "pod-b")  # the player reconnected meanwhile
        await bus.stream_add(redis, keys.enqueue_requests, stale)
        await listener.until(lambda: len(listener.results) == 5)
        leave = p.DequeueRequest(request_id="l", player_id="7", game_mode="normal", pod_id="pod-a")
        await bus.stream_add(redis, keys.dequeue_requests, leave)
        await listener.until(lambda: len(listener.results) == 6)
    finally:
        await stop_all(tasks)
        await listener.stop()
    by_request = {r.request_id: r.result for r in listener.results}
    assert isinstance(by_request[first.request_id], p.ResultEnQueued)
    assert by_request[again.request_id] == p.ResultError(
        code=ErrorCode.ALREADY_QUEUED,
        message="the player is already in the normal queue",
        queued_mode="normal",
    )
    assert by_request[stale.request_id].code is ErrorCode.SESSION_REPLACED  # type: ignore[union-attr]
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
        await queue_player(
            redis, keys, GameMode.NORMAL, snap.player_id, score, msgspec.json.encode(snap)
        )
    await queue_player(redis, keys, GameMode.NORMAL, "666", 5, b"not json")
    formed = await mm.tick()
    assert formed == 1
    assert metrics.poisoned.labels("normal")._value.get() == 1
    # 1 and 2 were paired; 3 is back with its original enqueue time.
    assert await redis.zrange(keys.queue(GameMode.NORMAL), 0, -1, withscores=True) == [(b"3", 12)]
    assert await redis.xlen(keys.battles(GameMode.NORMAL)) == 1
    assert await redis.hkeys(keys.tickets(GameMode.NORMAL)) == [b"3"]  # the poisoned one is gone
    assert await redis.hget(keys.player("666"), "act") == b"idle"  # free again
