"""Redis Cluster: the whole PvP path on a real 3-primary cluster, and the one-slot rule.

The cluster is started by the tests from `redis-server --cluster-enabled yes`
(`embedded.start_redis_cluster`); servers select it by URL (`redis+cluster://host:port`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from devtools.embedded import ClusterHandle, start_redis_cluster
from devtools.stack import Stack
from fake_client.pvp import run_pvp
from servers.common import bus
from servers.common import protocol as p
from servers.common.config import Settings
from servers.common.keys import GameMode, Keys
from servers.common.lua import PairToCommit, QueueScripts
from tests.support.helpers import connect, eventually


class _Recorder:
    """Stands in for a client: records the KEYS of every script call."""

    def __init__(self, replies: list[Any]) -> None:
        self.calls: list[tuple[str, list[str]]] = []
        self.replies = replies  # one per call, in order

    def register_script(self, source: str) -> Any:
        name = source.splitlines()[0]

        async def call(keys: list[str], args: list[Any]) -> Any:
            self.calls.append((name, keys))
            return self.replies.pop(0)

        return call


@pytest.mark.parametrize("mode", list(GameMode))
async def test_every_queue_script_keeps_its_keys_in_one_slot(mode: GameMode) -> None:
    recorder = _Recorder([[1, 1], [1, 0], [], [], 0, 0])
    scripts = QueueScripts(recorder, Keys("cg"))
    await scripts.enqueue(mode, "1", 0, b"{}", "pod-1")
    await scripts.dequeue(mode, "1", "pod-1")
    await scripts.pop(mode, 10, 0)
    await scripts.commit(mode, [PairToCommit("m", "1", "2", b"{}")], [], [])
    await scripts.reap(mode, 0)
    await scripts.repoint(mode, "1", "pod-1")
    assert len(recorder.calls) == 6
    for name, keys in recorder.calls:
        assert len({key_slot(k.encode()) for k in keys}) == 1, (name, keys)


def test_player_keys_share_the_player_slot() -> None:
    keys = Keys("cg")
    slots = {
        key_slot(k.encode())
        for k in (keys.player_pod("7"), keys.player_match("7"), keys.delivered("7", "m"))
    }
    assert len(slots) == 1


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[ClusterHandle]:
    handle = start_redis_cluster(3)
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def cluster_stack(settings: Settings, redis_cluster: ClusterHandle) -> Iterator[Stack]:
    clustered = settings.replace(
        redis={"url": redis_cluster.url, "namespace": f"{settings.redis.namespace}-cl"}
    )
    with Stack(clustered, pods=2) as running:
        yield running


@pytest.fixture
async def cluster_redis(redis_cluster: ClusterHandle) -> AsyncIterator[aioredis.Redis]:
    client = bus.connect_redis(redis_cluster.url)
    yield client
    await client.aclose()


async def test_the_url_selects_a_cluster_client(cluster_redis: aioredis.Redis) -> None:
    assert bus.is_cluster(cluster_redis)
    assert await cluster_redis.ping()
    nodes = cluster_redis.get_primaries()  # type: ignore[attr-defined]
    assert len(nodes) == 3
    # The queue data of the modes spreads over the cluster; each mode stays in one slot.
    assert len({key_slot(Keys("cg").queue(m).encode()) for m in GameMode}) == len(GameMode)


async def test_pvp_across_two_pods_on_a_cluster(cluster_stack: Stack, pool: asyncpg.Pool) -> None:
    alice = await connect(cluster_stack, pod=0)
    bob = await connect(cluster_stack, pod=1)
    try:
        assert alice.welcome.pod_id != bob.welcome.pod_id
        await alice.request(p.Enqueue())
        await bob.request(p.Enqueue())
        found_a = await alice.next_push(p.MatchFound, 10)
        found_b = await bob.next_push(p.MatchFound, 10)
        assert found_a.match_id == found_b.match_id
        result_a = await alice.next_push(p.BattleResultMessage, 10)
        result_b = await bob.next_push(p.BattleResultMessage, 10)
    finally:
        await alice.close()
        await bob.close()
    assert result_a.match_id == result_b.match_id == found_a.match_id
    assert bytes(result_a.timeline) == bytes(result_b.timeline)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM match_participants WHERE match_id = $1::uuid", found_a.match_id
        )
        == 2
    )


async def test_many_pairs_on_a_cluster_all_complete(cluster_stack: Stack) -> None:
    summary = await run_pvp(cluster_stack.auth_url, cluster_stack.game_urls, 12, timeout=20)
    assert summary.errors == []
    assert summary.matches_completed == 12 and summary.players_failed == 0
    # (cross-pod pairs form by chance here; the test above forces one)


async def test_health_sees_game_servers_on_every_node(cluster_stack: Stack) -> None:
    """PUBSUB NUMSUB counts per node: the match server sums the whole cluster, so the seed's
    rule does not mistake game servers subscribed on another node for none at all."""

    async def healthy() -> bool:
        async with httpx.AsyncClient(timeout=2) as http:
            codes = [
                (await http.get(f"{url}/health/game-server")).status_code
                for url in cluster_stack.match_urls
            ]
        return codes == [200, 200]

    await eventually(healthy, 5)


async def test_dropped_socket_dequeues_on_a_cluster(
    cluster_stack: Stack, cluster_redis: aioredis.Redis
) -> None:
    keys = Keys(cluster_stack.settings.redis.namespace)
    carol = await connect(cluster_stack, pod=0)
    await carol.request(p.Enqueue())
    player = carol.welcome.player_id
    assert await cluster_redis.zscore(keys.queue(GameMode.NORMAL), player) is not None
    await carol.close()

    async def gone() -> bool:
        return await cluster_redis.zscore(keys.queue(GameMode.NORMAL), player) is None

    await eventually(gone, 5)


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
