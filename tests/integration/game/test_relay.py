"""The game server's relay against a real Redis and PostgreSQL: what it passes to a player's
socket, and in which order."""

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

    from servers.game.relay import Relay
    from servers.game.sessions import Connection

    relay = Relay(redis, pool, keys, "pod-x", 3.0, 0.5)
    conn = Connection()
    conn.open()
    session, _ = relay.registry.attach("501", "five", conn)
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
    await relay.on_message(keys.battle_result("pod-x"), msgspec.json.encode(result))
    assert conn.outbox.empty()  # held back
    found = p.MatchResult(
        player_id="501",
        game_mode="normal",
        result=p.ResultMatchFound(match_id="m-501", opponent_id="502", opponent_name="six"),
    )
    await relay.on_message(keys.match_result("pod-x"), msgspec.json.encode(found))
    sent = [msgspec.json.decode(conn.outbox.get_nowait()) for _ in range(conn.outbox.qsize())]
    assert [m["type"] for m in sent] == ["match_found", "battle_result"]
    assert session.state.value == "idle"
