"""WebSocket sessions <-> Redis: queue requests out, match and battle results in."""

from __future__ import annotations

import logging
import time

import asyncpg
import msgspec
import redis.asyncio as aioredis

from servers.common import bus
from servers.common import protocol as p
from servers.common.keys import GameMode, Keys
from servers.game import lobby
from servers.game.sessions import Registry, Session

log = logging.getLogger("cardgame.game.relay")

_match_result = msgspec.json.Decoder(p.MatchResult)
_battle_result = msgspec.json.Decoder(p.BattleResult)


class Relay:
    """Implements the sessions' MatchPort and routes results to the registry's sessions."""

    def __init__(self, redis: aioredis.Redis, pool: asyncpg.Pool, keys: Keys, pod_id: str,
                 reply_timeout: float) -> None:
        self.redis, self.pool, self.keys, self.pod_id = redis, pool, keys, pod_id
        self.registry = Registry(self, reply_timeout)

    async def enqueue(self, session: Session, request_id: str, mode: GameMode) -> None:
        snapshot = await lobby.battle_snapshot(self.pool, int(session.player_id), self.pod_id)
        await bus.stream_add(self.redis, self.keys.enqueue_requests, p.EnqueueRequest(
            request_id=request_id, player_id=session.player_id, game_mode=mode.value,
            pod_id=self.pod_id, metadata=snapshot, enqueued_at_ms=int(time.time() * 1000)))

    async def dequeue(self, session: Session, request_id: str, mode: GameMode,
                      reason: p.DequeueReason) -> None:
        await bus.stream_add(self.redis, self.keys.dequeue_requests, p.DequeueRequest(
            request_id=request_id, player_id=session.player_id, game_mode=mode.value,
            pod_id=self.pod_id, reason=reason))

    def channels(self) -> list[str]:
        return [self.keys.match_result(self.pod_id), self.keys.battle_result(self.pod_id)]

    async def on_message(self, channel: str, data: bytes) -> None:
        if channel == self.keys.match_result(self.pod_id):
            result = _match_result.decode(data)
            session = self.registry.get(result.player_id)
            if session is not None:
                session.on_match_result(result)
        else:
            battle = _battle_result.decode(data)
            session = self.registry.get(battle.player_id)
            if session is None:
                log.info("battle result for %s, who has no session here", battle.player_id)
            else:
                session.on_battle_result(battle)
