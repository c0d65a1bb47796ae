"""The battle runner against a real Redis and PostgreSQL: a battle that cannot be run frees
its players and tells them, so nobody waits for a result that will not come."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import msgspec
import pytest
import redis.asyncio as aioredis

from servers.common import protocol as p
from servers.common.keys import Keys
from servers.common.lua import PlayerScripts
from tests.support.match_servers import hold, snapshot


async def test_a_battle_that_fails_for_good_frees_both_players(
    redis: aioredis.Redis, pool: asyncpg.Pool, keys: Keys
) -> None:
    from servers.game.battle.runner import BattleRunner

    players = PlayerScripts(redis, keys)
    # Two players nobody has registered: recording their match breaks a foreign key, an
    # error no retry mends.
    one, two = "990001", "990002"
    request = p.BattleRequest(
        match_id="00000000-0000-0000-0000-00000000fa11",
        game_mode="normal",
        seed=7,
        player1=p.PlayerCandidate(
            player_id=one, score=0, pod_id="pod-f", metadata=snapshot(one, "pod-f")
        ),
        player2=p.PlayerCandidate(
            player_id=two, score=0, pod_id="pod-f", metadata=snapshot(two, "pod-f")
        ),
    )
    deadline = int(time.time() * 1000) + 60_000
    for player in (one, two):  # both in this battle, as a commit would leave them
        epoch = await hold(redis, keys, player, "pod-f")
        await players.begin_pve(player, epoch, request.match_id, deadline, "normal")
    await redis.set(keys.player_match(one), request.match_id)  # a result owed, until now
    pubsub = redis.pubsub()
    await pubsub.subscribe(keys.pod_control("pod-f"))
    told: list[p.PodCommand] = []
    runner = BattleRunner(redis, pool, keys, "pod-x")
    try:
        with pytest.raises(asyncpg.PostgresError):
            await runner.run(request)

        async def collect() -> None:
            while len(told) < 2:
                message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                if message is not None:
                    told.append(msgspec.json.decode(message["data"], type=p.PodCommand))

        await asyncio.wait_for(collect(), 5)
    finally:
        await pubsub.aclose()
    assert {(c.player_id, c.command, c.match_id, c.reason) for c in told} == {
        (one, "battle_failed", request.match_id, "failed"),
        (two, "battle_failed", request.match_id, "failed"),
    }
    for player in (one, two):
        assert await redis.hget(keys.player(player), "act") == b"idle"
    assert await redis.get(keys.player_match(one)) is None  # no result is owed
    assert await redis.zcard(keys.deadlines) == 0
