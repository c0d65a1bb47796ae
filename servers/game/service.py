"""The game server's player-facing side, assembled: the pod's shared state and the jobs over it.

`GameService.build` is the one place that wires them: the registry's sessions queue through the
queue port and are let go by the resume job when forgotten; the inbox routes what Redis brings.
The socket (game/ws.py) and the process (game/app.py) use the service; the jobs use the pod.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
import redis.asyncio as aioredis

from servers.common.config import GameSettings
from servers.common.keys import Keys
from servers.common.lua import PlayerScripts
from servers.game.inbox import Inbox
from servers.game.parties import Parties
from servers.game.pod import Pod
from servers.game.queue_port import QueuePort
from servers.game.resume import Resume
from servers.game.sessions import Registry


@dataclass(frozen=True)
class GameService:
    pod: Pod
    queue: QueuePort
    resume: Resume
    inbox: Inbox

    @classmethod
    def build(
        cls,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        keys: Keys,
        pod_id: str,
        settings: GameSettings | None = None,
        battle_deadline: float = 120.0,
    ) -> GameService:
        game = settings or GameSettings()
        players = PlayerScripts(redis, keys)  # the scripts registered once per process
        pod = Pod(
            redis,
            pool,
            keys,
            pod_id,
            game,
            int(battle_deadline * 1000),
            players,
            Parties(redis, keys, game.party_ttl, players),
        )
        service = cls(pod, QueuePort(pod), Resume(pod), Inbox(pod))
        pod.registry = Registry(
            service.queue,
            game.match_reply_timeout,
            game.reconnect_grace,
            on_forget=service.resume.forgotten,
            gzip_threshold=game.timeline_gzip_threshold,
        )
        return service

    @property
    def registry(self) -> Registry:
        return self.pod.registry
