"""The GCRA rate-limit script (lua/) against a real Redis."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from servers.common.keys import Keys
from servers.common.lua import RateLimitScript


async def test_gcra_allows_the_burst_then_the_rate(redis: aioredis.Redis, keys: Keys) -> None:
    script = RateLimitScript(redis)
    key = keys.rate_limit("t", "1.2.3.4")
    burst = [await script.hit(key, per_second=10, burst=5) for _ in range(8)]
    assert [d.allowed for d in burst] == [True] * 5 + [False] * 3
    assert [d.remaining for d in burst[:5]] == [4, 3, 2, 1, 0]
    assert 0 < burst[-1].retry_after <= 0.1
    await asyncio.sleep(0.11)  # on purpose: one token refills in 0.1 s at 10/s
    assert (await script.hit(key, per_second=10, burst=5)).allowed
    assert not (await script.hit(key, per_second=10, burst=5)).allowed
    ttl = await redis.pttl(key)
    assert 0 < ttl <= 600  # the key lives only until the bucket is full again
    other = await script.hit(keys.rate_limit("t", "5.6.7.8"), per_second=10, burst=5)
    assert other.allowed and other.remaining == 4
