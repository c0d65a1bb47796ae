"""Failures: reconnects, dead pods, graceful drain, Redis and PostgreSQL outages. Real processes,
real kills."""

from __future__ import annotations

import asyncio
import signal
import time

import pytest
import redis.asyncio as aioredis
import websockets

from devtools.stack import Stack
from fake_client.client import GameClient
from servers.common import protocol as p
from servers.common.config import Settings
from servers.common.keys import GameMode, Keys
from tests.support.helpers import eventually, login
from tests.support.pvp import play_across_pods

NORMAL = GameMode.NORMAL


def stack_keys(stack: Stack) -> Keys:
    return Keys(stack.settings.redis.namespace)


async def queued_on(redis: aioredis.Redis, keys: Keys, player: str) -> str | None:
    if await redis.zscore(keys.queue(NORMAL), player) is None:
        return None
    pod = await redis.hget(keys.ticket_pods(NORMAL), player)
    return pod.decode() if pod else "?"


async def test_reconnect_to_another_pod_keeps_the_queue_place(
    stack: Stack, redis: aioredis.Redis, settings: Settings
) -> None:
    keys = Keys(settings.redis.namespace)
    alice = await login(stack)
    first = await GameClient.connect(stack.game_urls[0], alice.access_token)
    await first.request(p.Enqueue())
    await first.close()
    again = await GameClient.connect(stack.game_urls[1], alice.access_token)
    try:
        assert again.welcome.resumed and again.welcome.state == "queued"
        assert again.welcome.mode == "normal"
        assert await queued_on(redis, keys, alice.player_id) == "pod-2"
        # On purpose: let pod-1's reconnect grace for the old socket run out (nothing to observe
        # when the move works: pod-1 then sends no dequeue), and check she is still queued.
        await asyncio.sleep(settings.game.reconnect_grace + 0.5)
        assert await queued_on(redis, keys, alice.player_id) == "pod-2"
        bob = await login(stack)
        opponent = await GameClient.connect(stack.game_urls[0], bob.access_token)
        await opponent.request(p.Enqueue())
        found = await again.next_push(p.MatchFound, 10)
        result = await again.next_push(p.BattleResultMessage, 10)
        assert found.opponent_id == bob.player_id and result.match_id == found.match_id
        await opponent.close()
    finally:
        await again.close()


async def test_missed_battle_result_is_delivered_once_on_reconnect(stack: Stack) -> None:
    alice, bob = await login(stack), await login(stack)
    a = await GameClient.connect(stack.game_urls[0], alice.access_token)
    await a.request(p.Enqueue())
    await a.close()  # gone before the match: the grace period keeps her queued
    b = await GameClient.connect(stack.game_urls[1], bob.access_token)
    await b.request(p.Enqueue())
    found = await b.next_push(p.MatchFound, 10)
    await b.next_push(p.BattleResultMessage, 10)
    await b.close()
    back = await GameClient.connect(stack.game_urls[1], alice.access_token)
    try:
        assert back.welcome.state == "in_battle" and back.welcome.match_id == found.match_id
        missed = await back.next_push(p.BattleResultMessage, 5)
        assert missed.match_id == found.match_id and missed.opponent_id == bob.player_id
    finally:
        await back.close()
    later = await GameClient.connect(stack.game_urls[0], alice.access_token)
    try:
        assert later.welcome.state == "idle"
        assert isinstance(await later.request(p.Ping()), p.Pong)
        assert later.pushes.empty()  # not delivered twice
    finally:
        await later.close()


async def test_game_server_death_with_a_queued_player_dequeues_within_seconds(
    own_stack: Stack, redis: aioredis.Redis
) -> None:
    keys = stack_keys(own_stack)
    lonely = await login(own_stack)
    client = await GameClient.connect(own_stack.game_urls[1], lonely.access_token)
    await client.request(p.Enqueue())
    assert await queued_on(redis, keys, lonely.player_id) == "pod-2"
    killed_at = time.monotonic()
    own_stack.proc("game-2").kill()

    async def gone() -> bool:
        return await queued_on(redis, keys, lonely.player_id) is None

    await eventually(gone, timeout=10)
    elapsed = time.monotonic() - killed_at
    s = own_stack.settings
    assert elapsed < s.pods.heartbeat_ttl + s.game.reconnect_grace + 3
    beats = await redis.exists(keys.heartbeat("pod-2", "game"), keys.heartbeat("pod-1", "game"))
    assert beats == 1  # pod-1 is alive, pod-2 is not


async def test_drain_dequeues_with_notice_and_closes_with_1012(
    own_stack: Stack, redis: aioredis.Redis
) -> None:
    keys = stack_keys(own_stack)
    who = await login(own_stack)
    client = await GameClient.connect(own_stack.game_urls[1], who.access_token)
    await client.request(p.Enqueue())
    game = own_stack.proc("game-2")
    assert game.popen is not None
    game.popen.send_signal(signal.SIGTERM)
    notice = await client.next_push(p.Dequeued, 10)
    assert notice.reason == "server"
    await eventually(lambda: _closed(client), timeout=10)
    assert client.ws.close_code == 1012
    assert game.popen.wait(10) == 0
    assert await queued_on(redis, keys, who.player_id) is None
    with pytest.raises((OSError, websockets.InvalidHandshake)):
        await websockets.connect(own_stack.game_urls[1], open_timeout=2)


async def _closed(client: GameClient) -> bool:
    return client.ws.close_code is not None


async def _play_one_match(stack: Stack) -> None:
    await play_across_pods(stack, timeout=15)


async def _retry(work, timeout: float):  # type: ignore[no-untyped-def]
    """Retry a whole client scenario until the servers have recovered."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await work()
        except Exception:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)  # the pace of the retries (bounded by the deadline)


def answers(port: int, timeout: float = 10.0) -> None:
    """Wait until the Redis server just started on `port` answers PING; fail if it does not."""
    import redis

    client = redis.Redis(port=port, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                if client.ping():
                    return
            except redis.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"Redis on port {port} not answering"
            time.sleep(0.05)  # polling pace (bounded by the deadline)
    finally:
        client.close()


def test_servers_survive_a_redis_restart(settings: Settings, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import subprocess

    from devtools.embedded import find_redis_server, redis_argv
    from devtools.stack import free_port

    port = free_port()
    argv = redis_argv(find_redis_server(), port, str(tmp_path))
    redis_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    mine = settings.replace(redis={"url": f"redis://127.0.0.1:{port}/0"})
    try:
        answers(port)
        with Stack(mine, pods=2) as stack:
            asyncio.run(_play_one_match(stack))
            redis_proc.kill()  # Redis crashes: every key, stream and group is gone
            redis_proc.wait()
            time.sleep(1.0)  # on purpose: the outage lasts a moment, as a restart does
            redis_proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
            answers(port)
            asyncio.run(_retry(lambda: _play_one_match(stack), timeout=30))
            assert all(proc.alive() for proc in stack.procs)
    finally:
        redis_proc.kill()
        redis_proc.wait()


async def test_servers_survive_dropped_database_connections(stack: Stack, pool) -> None:  # type: ignore[no-untyped-def]
    await _play_one_match(stack)
    # Every server connection to the test database is cut (a failover looks like this).
    await pool.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    await _retry(lambda: _play_one_match(stack), timeout=30)
