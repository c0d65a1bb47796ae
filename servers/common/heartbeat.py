"""Server heartbeats: each game and match server says it is alive, with its stats, under a TTL.

Anyone (match servers' watchdogs, the console) lists pods from one sorted set and reads each
server's heartbeat; a missing heartbeat means that server is dead.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any, cast

import msgspec
import redis.asyncio as aioredis

from servers.common import bus
from servers.common.bus import stop_if_cancelling
from servers.common.keys import Keys

log = logging.getLogger("cardgame.heartbeat")
ROLES = ("game", "match")


class Heartbeat(msgspec.Struct, kw_only=True):
    pod_id: str
    role: str
    pid: int
    started_at: float
    at: float
    stats: dict[str, Any]


async def beat(redis: aioredis.Redis, keys: Keys, heartbeat: Heartbeat, ttl: float) -> None:
    async with redis.pipeline(transaction=False) as pipe:
        pipe.set(
            keys.heartbeat(heartbeat.pod_id, heartbeat.role),
            msgspec.json.encode(heartbeat),
            px=int(ttl * 1000),
        )
        pipe.zadd(keys.pods, {heartbeat.pod_id: int(heartbeat.at * 1000)})
        await pipe.execute()


async def run_heartbeat(
    redis: aioredis.Redis,
    keys: Keys,
    pod_id: str,
    role: str,
    stats: Callable[[], Mapping[str, Any]],
    interval: float,
    ttl: float,
) -> None:
    started = time.time()
    while True:
        stop_if_cancelling()  # a swallowed cancel must not keep the loop going
        try:
            await beat(
                redis,
                keys,
                Heartbeat(
                    pod_id=pod_id,
                    role=role,
                    pid=os.getpid(),
                    started_at=started,
                    at=time.time(),
                    stats=dict(stats()),
                ),
                ttl,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis down: keep trying; the TTL tells others meanwhile
            stop_if_cancelling()
            log.warning("heartbeat of %s/%s failed: %s", pod_id, role, exc)
        await asyncio.sleep(interval)


async def read_heartbeats(redis: aioredis.Redis, keys: Keys) -> dict[str, dict[str, Heartbeat]]:
    """pod id -> role -> heartbeat, for every pod that beat recently enough to be listed."""
    # Without WITHSCORES, ZRANGE replies with the members alone (redis-py's type also allows the
    # (member, score) pairs of WITHSCORES).
    members = cast("list[bytes]", await redis.zrange(keys.pods, 0, -1))
    pods = [bus.text(p) for p in members]
    if not pods:
        return {}
    values = await bus.mget(redis, [keys.heartbeat(pod, role) for pod in pods for role in ROLES])
    out: dict[str, dict[str, Heartbeat]] = {pod: {} for pod in pods}
    for i, value in enumerate(values):
        if value is not None:
            pod, role = pods[i // len(ROLES)], ROLES[i % len(ROLES)]
            out[pod][role] = msgspec.json.decode(value, type=Heartbeat)
    return out
