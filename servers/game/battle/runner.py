"""Runs the battles whose player1 is on this pod (the seed's BattleActor), then routes results."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

import asyncpg
import msgspec
import redis.asyncio as aioredis

from servers.common import protocol as p
from servers.common.keys import Keys
from servers.game.battle.sim import encode_timeline, simulate
from servers.game.persistence import record_match

log = logging.getLogger("cardgame.game.battle")

_battle_request = msgspec.json.Decoder(p.BattleRequest)
_encoder = msgspec.json.Encoder()


class BattleRunner:
    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool, keys: Keys, pod_id: str) -> None:
        self.redis, self.pool, self.keys, self.pod_id = redis, pool, keys, pod_id
        self.tasks: set[asyncio.Task[None]] = set()
        self.completed = 0

    async def on_request(self, _channel: str, data: bytes) -> None:
        request = _battle_request.decode(data)
        if request.player1.pod_id != self.pod_id:
            return
        task = asyncio.create_task(self.run(request), name=f"battle-{request.match_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def run(self, request: p.BattleRequest) -> None:
        started = datetime.now(UTC)
        try:
            outcome = simulate(request.player1.metadata, request.player2.metadata, request.seed)
            timeline = encode_timeline(outcome.events)
            fresh = await record_match(
                self.pool, request, winner_id=outcome.winner_id, end_reason=outcome.reason,
                turns=outcome.turns, timeline=timeline, pod_id=self.pod_id, started_at=started)
            if not fresh:
                log.info("match %s was already recorded; not delivering twice", request.match_id)
                return
            await self.publish_results(request, outcome.winner_id, outcome.turns, timeline)
            self.completed += 1
        except Exception:
            log.exception("battle %s failed", request.match_id)

    async def publish_results(self, request: p.BattleRequest, winner_id: str | None, turns: int,
                              timeline: bytes) -> None:
        raw = msgspec.Raw(timeline)
        async with self.redis.pipeline(transaction=False) as pipe:
            for me, other in ((request.player1, request.player2),
                              (request.player2, request.player1)):
                pipe.publish(self.keys.battle_result(me.pod_id), _encoder.encode(p.BattleResult(
                    match_id=request.match_id, game_mode=request.game_mode,
                    player_id=me.player_id, opponent_id=other.player_id, seed=request.seed,
                    winner_id=winner_id, turns=turns, timeline=raw)))
            await pipe.execute()

    async def drain(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)
