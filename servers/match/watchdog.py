"""Game-server liveness, as seen from a match server.

Two rules:
* per pod: a game server whose heartbeat expired is dead; once the reconnect grace has passed
  too, its players still queued (and not reconnected elsewhere) are dequeued, Redis only: their
  sockets died with the server. Players of healthy pods are untouched.
* the design's liveness rule: when no game server at all subscribes `battle:request` for
  `numsub_failures` checks in a row, every queued player is removed and maintenance mode is set;
  the liveness probe (`/health/game-server`) fails from that check until a game server is seen
  again.

A check that cannot reach Redis counts neither way: it says nothing about game servers. It
marks Redis unreachable (readiness and metrics), so a Redis outage never fails liveness.
"""

from __future__ import annotations

import asyncio
import logging
import time

import redis.asyncio as aioredis

from servers.common import bus
from servers.common.bus import stop_if_cancelling
from servers.common.config import Settings
from servers.common.heartbeat import ROLES, read_heartbeats
from servers.common.keys import GameMode, Keys
from servers.common.lua import Busy, Dequeued
from servers.common.players import dequeued_notice
from servers.match.loop import Matchmaking

log = logging.getLogger("cardgame.match.watchdog")
AUTO = b"auto"


class Watchdog:
    def __init__(
        self, redis: aioredis.Redis, keys: Keys, mm: Matchmaking, settings: Settings
    ) -> None:
        self.redis, self.keys, self.mm, self.s = redis, keys, mm, settings
        self.dead_since: dict[str, float] = {}  # pod -> when its game server was seen dead
        self.cleaned: set[str] = set()
        self.numsub_failures = 0  # NUMSUB checks in a row that found no subscriber
        self.subscribers: int | None = None  # what the last NUMSUB check found
        self.game_servers_seen = True  # the last NUMSUB check found a subscriber
        self.redis_ok = True
        self.auto_maintenance = False  # maintenance set by the NUMSUB rule (not by an operator)
        self.players_removed = 0

    @property
    def game_servers_ok(self) -> bool:
        return self.game_servers_seen and not self.auto_maintenance

    @property
    def no_game_server(self) -> bool:
        """The seed's rule has fired: `numsub_failures` checks in a row found no game server."""
        return self.numsub_failures >= self.s.match.numsub_failures

    async def run(self) -> None:
        next_numsub = time.monotonic() + self.s.match.numsub_check_interval
        while True:
            stop_if_cancelling()  # a swallowed cancel must not keep the loop going
            try:
                await self.refresh_maintenance()
                await self.check_pods()
                if time.monotonic() >= next_numsub:
                    next_numsub = time.monotonic() + self.s.match.numsub_check_interval
                    await self.check_numsub()
                self.redis_ok = True
                self.mm.metrics.redis_up.set(1.0)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis down: report unready, keep watching
                stop_if_cancelling()
                self.redis_ok = False
                self.mm.metrics.redis_up.set(0.0)
                self.mm.metrics.watchdog_failures.inc()
                log.warning("watchdog check failed: %s", exc)
            await asyncio.sleep(self.s.pods.heartbeat_interval)

    async def refresh_maintenance(self) -> None:
        flag = await self.redis.get(self.keys.maintenance_flag)
        self.mm.maintenance = flag is not None
        self.mm.metrics.maintenance.set(1.0 if flag is not None else 0.0)
        self.auto_maintenance = flag == AUTO

    async def check_pods(self) -> None:
        now = time.monotonic()
        beats = await read_heartbeats(self.redis, self.keys)
        self.mm.metrics.heartbeats(beats, time.time(), ROLES)
        for pod, roles in beats.items():
            if "game" in roles:
                self.dead_since.pop(pod, None)
                self.cleaned.discard(pod)
                continue
            since = self.dead_since.setdefault(pod, now)
            if pod not in self.cleaned and now - since >= self.s.game.reconnect_grace:
                removed = await self.dequeue_pod(pod)
                self.mm.metrics.players_removed.labels("dead_pod").inc(removed)
                self.cleaned.add(pod)
                log.warning("game server of %s is dead: dequeued %d of its players", pod, removed)
            if not roles and now - since > 3600:  # long gone: stop listing it
                await self.redis.zrem(self.keys.pods, pod)

    async def dequeue_pod(self, pod: str) -> int:
        """Dequeue the players the dead pod held, each with a notice for their next welcome;
        the pod is told too, in case it was only slow (a stalled loop misses heartbeats)."""
        removed = 0
        for mode in GameMode:
            notice = dequeued_notice(mode, "server")
            gone: list[tuple[str, str]] = []
            async for player, holder in self.redis.hscan_iter(
                self.keys.ticket_pods(mode), count=1000
            ):
                if holder.decode() != pod:
                    continue
                try:
                    status, _ = await self.mm.scripts.dequeue(
                        mode, player.decode(), only_pod=pod, notice=notice
                    )
                except Busy:  # matched meanwhile: the battle goes on
                    continue
                if status is Dequeued.REMOVED:
                    gone.append((player.decode(), pod))
            await self.mm.tell_dequeued(mode, gone, "server")
            removed += len(gone)
        self.players_removed += removed
        return removed

    async def check_numsub(self) -> None:
        count = await bus.numsub(self.redis, self.keys.battle_request)
        self.subscribers = count
        self.mm.metrics.game_servers.set(count)
        if count > 0:
            self.numsub_failures = 0
            self.game_servers_seen = True
            if self.auto_maintenance:
                await self.redis.delete(self.keys.maintenance_flag)
                self.auto_maintenance = self.mm.maintenance = False
                log.warning("game servers are back: maintenance mode off")
            return
        self.numsub_failures += 1
        self.game_servers_seen = False
        if self.numsub_failures >= self.s.match.numsub_failures and not self.mm.maintenance:
            removed = await self.clear_queues()
            self.mm.metrics.players_removed.labels("no_game_server").inc(removed)
            await self.redis.set(self.keys.maintenance_flag, AUTO, ex=self.s.match.maintenance_ttl)
            self.mm.maintenance = self.auto_maintenance = True
            log.error(
                "no game server for %d checks: removed %d queued players, maintenance on",
                self.numsub_failures,
                removed,
            )

    async def clear_queues(self) -> int:
        removed = 0
        for mode in GameMode:
            players = await self.mm.scripts.clear(mode, dequeued_notice(mode, "server"))
            await self.mm.tell_dequeued(mode, players, "server")
            removed += len(players)
        self.players_removed += removed
        return removed
