"""Redis Cluster: the whole PvP path on a real 3-primary cluster (the one-slot rule of the keys:
tests/unit/common/test_keys.py).

The cluster is started by the tests from `redis-server --cluster-enabled yes`
(`embedded.start_redis_cluster`); servers select it by URL (`redis+cluster://host:port`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

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
from tests.support.helpers import connect, eventually
from tests.support.pvp import play_across_pods


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
    # Matchmaking shares one slot; the players' delivery keys spread over the cluster.
    keys = Keys("cg")
    assert len({key_slot(keys.queue(m).encode()) for m in GameMode}) == 1
    delivery = {key_slot(keys.player_match(str(p)).encode()) for p in range(100)}
    owners = {cluster_redis.nodes_manager.get_node_from_slot(s).name for s in delivery}  # type: ignore[attr-defined]
    assert len(owners) == 3


async def test_pvp_across_two_pods_on_a_cluster(cluster_stack: Stack, pool: asyncpg.Pool) -> None:
    match = await play_across_pods(cluster_stack)
    result_a, result_b = match.results
    assert result_a.match_id == result_b.match_id == match.match_id
    assert bytes(result_a.timeline) == bytes(result_b.timeline)
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM match_participants WHERE match_id = $1::uuid", match.match_id
        )
        == 2
    )


async def test_many_pairs_on_a_cluster_all_complete(cluster_stack: Stack) -> None:
    summary = await run_pvp(cluster_stack.auth_url, cluster_stack.game_urls, 12, timeout=20)
    assert summary.errors == []
    assert summary.matches_completed == 12 and summary.players_failed == 0
    # (cross-pod pairs form by chance here; the test above forces one)


async def test_health_sees_game_servers_on_every_node(cluster_stack: Stack) -> None:
    """PUBSUB NUMSUB counts per node: the match server sums the whole cluster, so the rule
    "no game server subscribed means maintenance" does not mistake game servers subscribed on
    another node for none at all."""

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
