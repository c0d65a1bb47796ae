"""The game server's inbox and the player record against a real Redis and PostgreSQL: what
reaches a player's socket, in which order, and what a session ends as."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis

from servers.common import protocol as p
from servers.common.keys import GameMode, Keys


async def test_a_result_that_overtakes_its_match_found_waits_for_it(
    redis: aioredis.Redis, pool: asyncpg.Pool, keys: Keys
) -> None:
    """On a cluster, MatchFound (published by the match server) and the battle result
    (published by a game server) can reach a pod through different nodes in either order. The
    client must still see MatchFound first, then its result."""
    import msgspec

    from servers.game.service import GameService
    from servers.game.sessions import Connection, Written

    service = GameService.build(redis, pool, keys, "pod-x")
    pod = service.pod
    conn = Connection()
    conn.open()
    session, _ = pod.registry.attach("501", "five", conn)
    session.resume_queued(GameMode.NORMAL)
    result = p.BattleResult(
        match_id="m-501",
        game_mode="normal",
        player_id="501",
        opponent_id="502",
        seed=1,
        winner_id="501",
        turns=3,
        timeline=msgspec.Raw(b"[]"),
    )
    await service.inbox.on_message(keys.battle_result("pod-x"), msgspec.json.encode(result))
    assert conn.outbox.empty()  # held back
    found = p.MatchResult(
        player_id="501",
        game_mode="normal",
        result=p.ResultMatchFound(match_id="m-501", opponent_id="502", opponent_name="six"),
    )
    await service.inbox.on_message(keys.match_result("pod-x"), msgspec.json.encode(found))
    queued = [conn.outbox.get_nowait() for _ in range(conn.outbox.qsize())]
    sent = [msgspec.json.decode(q.data if isinstance(q, Written) else q) for q in queued]
    assert [m["type"] for m in sent] == ["match_found", "battle_result"]
    assert session.state.value == "idle"


async def test_a_forgotten_session_lets_the_player_go(
    redis: aioredis.Redis, pool: asyncpg.Pool, keys: Keys
) -> None:
    """After its reconnect grace a session is forgotten whatever it was doing, and the
    player's record is let go: nobody holds them, a queued player is dequeued with a notice."""
    from servers.common.config import GameSettings
    from servers.common.lua import QueueScripts
    from servers.game.service import GameService
    from servers.game.sessions import Connection
    from tests.support.helpers import eventually

    service = GameService.build(redis, pool, keys, "pod-x", GameSettings(reconnect_grace=0.05))
    pod = service.pod
    conn = Connection()
    session, _, _ = await service.resume.connect("601", "six", conn)
    await QueueScripts(redis, keys).enqueue(GameMode.NORMAL, "601", 1, b"{}", session.epoch)
    session.resume_queued(GameMode.NORMAL)
    pod.registry.detach(session, conn)

    async def let_go() -> bool:
        return len(pod.registry) == 0 and await redis.hget(keys.player("601"), "pod") == b""

    await eventually(let_go, timeout=5, what="the session forgotten and the player let go")
    await pod.close()
    assert await redis.zcard(keys.queue(GameMode.NORMAL)) == 0
    again = await service.resume.connect("601", "six", Connection())
    assert isinstance(again[2], p.Dequeued) and again[2].reason == "disconnected"
