"""`cardgame bench matchmaker`: the match server's TryMatch alone, against a real Redis.

For each queue length N the queue is filled with N players holding realistic tickets (a 20-card
battle snapshot, ~1.5 KB), then:

* batch: the cost of one pop -> pair -> commit (battle stream) -> publish round of `batch`
  players with ~N queued (the tick cost per players matched; it must not grow with N);
* drain: `Matchmaking.tick()` empties the whole queue; players paired per second.

Matches are published on the real channels (nobody subscribes, as if no game server listened).
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
import uuid
from typing import Any

import redis.asyncio as aioredis

from devtools.bench.procs import machine
from devtools.embedded import ensure_redis
from servers.common import bus
from servers.common import protocol as p
from servers.common.config import load_settings
from servers.common.keys import GameMode, Keys
from servers.common.models import BattleSnapshot, CardSnapshot
from servers.match.loop import Matchmaking
from servers.match.metrics import MatchMetrics

FILL_CHUNK = 20_000
BATCH_ROUNDS = 20
FIRST_ID = 76561197960265729


def ticket(player_id: str) -> bytes:
    deck = tuple(
        CardSnapshot(
            card_id=1 + i // 2,
            name=f"Card {1 + i // 2}",
            cost=1 + i % 7,
            attack=1 + i % 5,
            health=2 + i % 4,
        )
        for i in range(20)
    )
    pod = f"pod-{1 + int(player_id) % 2}"
    return p.encode(
        BattleSnapshot(
            player_id=player_id,
            name=f"Player{player_id[-6:]}",
            level=3,
            rating=1500.0,
            deck=deck,
            pod_id=pod,
        )
    )


async def fill(redis: aioredis.Redis, keys: Keys, count: int) -> float:
    """Queue `count` players (enqueue times 1 ms apart); returns the seconds it took."""
    started = time.perf_counter()
    mode = GameMode.NORMAL
    now = int(time.time() * 1000) - count
    for low in range(0, count, FILL_CHUNK):
        ids = [str(FIRST_ID + i) for i in range(low, min(count, low + FILL_CHUNK))]
        async with redis.pipeline(transaction=False) as pipe:
            pipe.zadd(keys.queue(mode), {pid: now + int(pid) - FIRST_ID for pid in ids})
            pipe.hset(keys.tickets(mode), mapping={pid: ticket(pid) for pid in ids})
            pipe.hset(
                keys.ticket_pods(mode), mapping={pid: f"pod-{1 + int(pid) % 2}" for pid in ids}
            )
            for pid in ids:  # each queued player has a record saying so, as enqueue.lua leaves it
                pipe.hset(
                    keys.player(pid),
                    mapping={
                        "epoch": 1,
                        "pod": f"pod-{1 + int(pid) % 2}",
                        "act": "queued",
                        "mode": mode.value,
                    },
                )
            await pipe.execute()
    return time.perf_counter() - started


async def measure(url: str, queued: int, batch: int) -> dict[str, Any]:
    keys = Keys(f"bench-mm-{uuid.uuid4().hex[:6]}")
    redis = bus.connect_redis(url)
    try:
        fill_s = await fill(redis, keys, queued)
        memory = (await redis.info("memory"))["used_memory"]
        mm = Matchmaking(redis, keys, batch, MatchMetrics())
        mode = GameMode.NORMAL
        # The tick cost of matching `batch` players out of ~N queued.
        rounds = []
        for _ in range(min(BATCH_ROUNDS, max(1, queued // batch // 2))):
            started = time.perf_counter()
            popped = await mm.scripts.pop(mode, batch, int(time.time() * 1000) + 60_000)
            await mm._match(mode, popped)
            rounds.append((time.perf_counter() - started) * 1000)
        left = await redis.zcard(keys.queue(mode))
        started = time.perf_counter()
        pairs = await mm.tick()
        drain_s = time.perf_counter() - started
        assert await redis.zcard(keys.queue(mode)) <= 1
        return {
            "queued": queued,
            "batch": batch,
            "fill_s": round(fill_s, 1),
            "redis_used_memory_mib": round(memory / 2**20, 1),
            "batch_ms": {
                "p50": round(statistics.median(rounds), 2),
                "max": round(max(rounds), 2),
                "rounds": len(rounds),
            },
            "batch_players_per_s": round(batch / (statistics.median(rounds) / 1000)),
            "drain": {
                "players": left,
                "pairs": pairs,
                "seconds": round(drain_s, 2),
                "players_paired_per_s": round(2 * pairs / drain_s) if drain_s else None,
            },
        }
    finally:
        mode = GameMode.NORMAL
        await redis.delete(
            keys.queue(mode),
            keys.tickets(mode),
            keys.ticket_pods(mode),
            keys.inflight(mode),
            keys.inflight_scores(mode),
            keys.battles(mode),
            keys.deadlines,
        )
        # The commits wrote a record per paired player: gone with the bench's namespace.
        for low in range(0, queued, FILL_CHUNK):
            async with redis.pipeline(transaction=False) as pipe:
                for i in range(low, min(queued, low + FILL_CHUNK)):
                    pipe.unlink(keys.player(str(FIRST_ID + i)))
                await pipe.execute()
        await redis.aclose()


def bench_matchmaker(sizes: list[int], batch: int | None) -> dict[str, Any]:
    # The match server logs one INFO line per match formed: a terminal printing hundreds of
    # thousands of them would be measured instead of the tick (production ships logs async).
    logging.getLogger("cardgame.match").setLevel(logging.WARNING)
    settings = load_settings()
    batch = batch or settings.match.batch_size
    service = ensure_redis(settings.redis.url or None)
    try:
        runs = [asyncio.run(measure(service.url, n, batch)) for n in sizes]
    finally:
        service.stop()
    return {"batch": batch, "runs": runs, "machine": machine()}


def print_matchmaker(result: dict[str, Any]) -> None:
    print(f"matchmaker, {result['batch']} players per pop")
    print(
        f"  {'queued':>9}  {'batch ms p50':>12}  {'batch max':>9}  {'batch players/s':>15}"
        f"  {'drain players/s':>15}  {'drain s':>7}  {'redis MiB':>9}"
    )
    for run in result["runs"]:
        print(
            f"  {run['queued']:>9}  {run['batch_ms']['p50']:>12}  {run['batch_ms']['max']:>9}"
            f"  {run['batch_players_per_s']:>15}  {run['drain']['players_paired_per_s']:>15}"
            f"  {run['drain']['seconds']:>7}  {run['redis_used_memory_mib']:>9}"
        )
