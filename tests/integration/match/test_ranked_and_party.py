"""Ranked, Party and ticket lifetime in the match servers against a real Redis."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections import Counter

import msgspec
import redis.asyncio as aioredis

from devtools.bench.matchmaking import stop_tasks
from servers.common import protocol as p
from servers.common.keys import GameMode, Keys
from servers.match.loop import Matchmaking
from servers.match.matchmakers.ranked import Window
from servers.match.metrics import MatchMetrics
from tests.support.helpers import eventually
from tests.support.match_servers import (
    Listener,
    fill_ranked,
    queue_player,
    start_servers,
    ticket,
)

_request = msgspec.json.Decoder(p.BattleRequest)


async def battles(redis: aioredis.Redis, keys: Keys, mode: GameMode) -> list[p.BattleRequest]:
    entries = await redis.xrange(keys.battles(mode))
    return [_request.decode(fields[b"m"]) for _id, fields in entries]


async def queue_and_inflight_empty(redis: aioredis.Redis, keys: Keys, mode: GameMode) -> bool:
    return await redis.zcard(keys.queue(mode)) == 0 and await redis.zcard(keys.inflight(mode)) == 0


async def run_servers(
    redis: aioredis.Redis, keys: Keys, count: int, until: int, window: Window
) -> list[p.BattleRequest]:
    servers = [
        Matchmaking(redis, keys, 64, MatchMetrics(), window=window, pass_interval=0.02)
        for _ in range(count)
    ]

    async def loop(mm: Matchmaking) -> None:
        while True:
            await mm.tick()
            await asyncio.sleep(0.02)  # the match servers' tick interval (as run_ticks paces)

    tasks = [asyncio.create_task(loop(mm)) for mm in servers]
    try:
        deadline = time.monotonic() + 10
        while len(await battles(redis, keys, GameMode.RANKED)) < until:
            if time.monotonic() > deadline:
                failed = [t.exception() for t in tasks if t.done() and not t.cancelled()]
                raise AssertionError(
                    f"not everyone was matched: {len(await battles(redis, keys, GameMode.RANKED))}"
                    f" pairs, queue {await redis.zcard(keys.queue(GameMode.RANKED))}, in flight"
                    f" {await redis.zcard(keys.inflight(GameMode.RANKED))}, failed {failed!r}"
                )
            await asyncio.sleep(0.02)  # polling pace (bounded by the deadline)
        # Nobody left waiting or being paired: no further battle can be formed, so a double match
        # would already be in the battle stream.
        await eventually(
            lambda: queue_and_inflight_empty(redis, keys, GameMode.RANKED),
            timeout=10,
            what="the Ranked queue and in-flight set empty",
        )
    finally:
        await stop_tasks(tasks)
    return await battles(redis, keys, GameMode.RANKED)


async def test_several_match_servers_on_the_ranked_queue(redis: aioredis.Redis) -> None:
    """No double match, nobody lost, never a player with themselves, and the same quality with
    three match servers as with one (the queue is paired whole, by one server per pass)."""
    rng = random.Random(7)
    ratings = {str(5000 + i): rng.gauss(1500, 300) for i in range(400)}
    # Waited long enough for the widest window: everyone can be paired in one pass.
    window = Window(start=50, growth=10, maximum=2000)
    mean_diff = {}
    for count in (1, 3):
        keys = Keys(f"t-ranked-{uuid.uuid4().hex[:6]}")
        await fill_ranked(redis, keys, ratings, waited_s=200)
        requests = await run_servers(redis, keys, count, 200, window)
        players = Counter(c.player_id for r in requests for c in (r.player1, r.player2))
        assert len(requests) == 200
        assert set(players) == set(ratings) and set(players.values()) == {1}
        assert all(r.player1.player_id != r.player2.player_id for r in requests)
        assert await redis.zcard(keys.queue(GameMode.RANKED)) == 0
        assert await redis.zcard(keys.inflight(GameMode.RANKED)) == 0
        mean_diff[count] = sum(
            abs(r.player1.metadata.rating - r.player2.metadata.rating) for r in requests
        ) / len(requests)
    assert mean_diff[3] <= mean_diff[1] * 1.05 + 1, mean_diff


async def test_expired_tickets_are_dequeued_and_told(redis: aioredis.Redis, keys: Keys) -> None:
    listener = Listener(redis, keys, ["pod-a"])
    await listener.ready.wait()
    now = int(time.time() * 1000)
    await queue_player(redis, keys, GameMode.NORMAL, "old", now - 10_000, ticket("old"))
    await queue_player(redis, keys, GameMode.RANKED, "older", now - 20_000, ticket("older"))
    await queue_player(redis, keys, GameMode.RANKED, "fresh", now, ticket("fresh", 3000))
    mm = Matchmaking(redis, keys, 64, MatchMetrics(), ticket_max_wait=5.0)
    try:
        assert await mm.expire_tickets() == 2
        await listener.until(lambda: len(listener.results) == 2, 5)
    finally:
        await listener.stop()
    told = {(r.player_id, r.game_mode): r.result for r in listener.results}
    assert told == {
        ("old", "normal"): p.ResultDequeued(reason="expired"),
        ("older", "ranked"): p.ResultDequeued(reason="expired"),
    }
    assert await redis.zrange(keys.queue(GameMode.RANKED), 0, -1) == [b"fresh"]
    assert not await redis.hexists(keys.tickets(GameMode.NORMAL), "old")
    assert await redis.hget(keys.player("old"), "act") == b"idle"


async def test_party_members_meet_each_other_only(redis: aioredis.Redis, keys: Keys) -> None:
    now = int(time.time() * 1000)
    queue = [
        ("a1", "AAAAAA"),
        ("b1", "BBBBBB"),
        ("a2", "AAAAAA"),
        ("c1", "CCCCCC"),
        ("b2", "BBBBBB"),
    ]
    for i, (player, code) in enumerate(queue):
        await queue_player(redis, keys, GameMode.PARTY, player, now + i, ticket(player, party=code))
    _, tasks = start_servers(redis, keys, 2)
    try:

        async def two_duels_and_only_c1_left() -> bool:
            """Both duels committed, and no pass in progress (a pass holds the players it popped
            in the in-flight set; the whole-queue pass runs one at a time), so a double match
            would already be in the battle stream."""
            return (
                len(await battles(redis, keys, GameMode.PARTY)) >= 2
                and await redis.zcard(keys.inflight(GameMode.PARTY)) == 0
                and await redis.zrange(keys.queue(GameMode.PARTY), 0, -1) == [b"c1"]
            )

        await eventually(two_duels_and_only_c1_left, timeout=5, what="the two party duels")
    finally:
        await stop_tasks(tasks)
    met = {
        frozenset((r.player1.player_id, r.player2.player_id))
        for r in await battles(redis, keys, GameMode.PARTY)
    }
    assert met == {frozenset(("a1", "a2")), frozenset(("b1", "b2"))}
    assert await redis.zrange(keys.queue(GameMode.PARTY), 0, -1) == [b"c1"]
