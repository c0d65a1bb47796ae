"""What one game server holds for its players, created once at start-up (game/service.py) and
shared by the jobs that serve them: the queue port (requests to the match servers), reconnect
and resume, the inbox (results and pod commands from Redis) and the client command table.

Every job reads the same handles from here; none keeps a second copy of what a player is doing:
that is the player's record in Redis, and the sessions in `registry` are this pod's cache of it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from servers.common import protocol as p
from servers.common.config import GameSettings
from servers.common.keys import Keys
from servers.common.lua import PlayerScripts
from servers.common.ratelimit import ActivityLimits
from servers.game.parties import Parties
from servers.game.sessions import Registry

log = logging.getLogger("cardgame.game")


@dataclass
class Pod:
    redis: aioredis.Redis
    pool: asyncpg.Pool
    keys: Keys
    pod_id: str
    settings: GameSettings
    battle_deadline_ms: int
    players: PlayerScripts
    parties: Parties
    # Set by game/service.py, which builds the registry with the jobs it needs.
    registry: Registry = field(init=False)
    # Per-player activity limits (PvE battles, party code guesses); none in some tests.
    limits: ActivityLimits | None = None
    # Runs a battle on this game server (PvE): the app's BattleRunner.
    run_battle: Callable[[p.BattleRequest], Awaitable[None]] | None = None
    draining: bool = False
    # The card catalogue version `cards` holds (servers/common/content.py): read at start-up,
    # then as announced on `Keys.catalogue_channel`; None while no catalogue was ever loaded.
    catalogue_version: int | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` in the background, owned here: awaited by `close`, never lost."""
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background work failed", exc_info=task.exception())

    async def close(self) -> None:
        """Wait for the background work still under way (at shutdown)."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
