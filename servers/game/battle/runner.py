"""Runs battles taken from the battle streams, then routes results.

Any game server may run any battle: the streams are read by one consumer group, so a battle is
run by one server, and one that died mid-battle is re-run by another after the claim idle time.
A battle is recorded at most once (keyed by its match id and its formation time, which every run
carries alike); re-running it is harmless because the simulation is deterministic, and the
players' game servers deliver a result once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

import asyncpg
import msgspec
import redis.asyncio as aioredis

from servers.common import logs
from servers.common import protocol as p
from servers.common.bus import RetryLater, redis_lost
from servers.common.config import RatingSettings
from servers.common.keys import PVE_MODE, Keys
from servers.common.lua import PlayerScripts, PublishScript
from servers.common.players import command_pods
from servers.common.timeline import encode_timeline
from servers.game import metrics
from servers.game.battle import engines
from servers.game.persistence import CatalogueCache, Recorded, is_recorded, record_match

log = logging.getLogger("cardgame.game.battle")

_battle_request = msgspec.json.Decoder(p.BattleRequest)
_encoder = msgspec.json.Encoder()
MATCH_MARKER_TTL = 600


class BattleRunner:
    def __init__(
        self,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        keys: Keys,
        pod_id: str,
        rating: RatingSettings | None = None,
        players: PlayerScripts | None = None,
    ) -> None:
        self.redis, self.pool, self.keys, self.pod_id = redis, pool, keys, pod_id
        self.rating = rating or RatingSettings()
        self.catalogue = CatalogueCache()  # one per pool: the runner's
        self.running = 0
        self.completed = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.publisher = PublishScript(redis)
        self.players = players or PlayerScripts(redis, keys)

    async def on_entry(self, data: bytes) -> None:
        await self.run(_battle_request.decode(data))

    async def run(self, request: p.BattleRequest) -> None:
        self.running += 1
        self.idle.clear()
        started = time.perf_counter()
        bound = logs.bind(match_id=request.match_id)
        try:
            await self._run(request)
            metrics.BATTLE_SECONDS.labels(request.game_mode).observe(time.perf_counter() - started)
        except RetryLater:
            if request.game_mode == PVE_MODE:  # not from a stream: nobody would run it again
                await self._fail(request)
            raise
        except Exception as exc:
            if not redis_lost(exc):  # for good: nobody may wait for this battle any longer
                await self._fail(request)
            raise
        finally:
            logs.unbind(bound)
            self.running -= 1
            if self.running == 0:
                self.idle.set()

    async def _run(self, request: p.BattleRequest) -> None:
        started = datetime.now(UTC)
        one, two = request.player1.player_id, request.player2.player_id
        if not await self.players.hold_match(
            request.match_id, [one, two]
        ) and not await is_recorded(self.pool, request.match_id):
            # Ended without being recorded: past its deadline (its players were told
            # battle_failed and may be in another battle now). Running it now would record a
            # match nobody waits for. A recorded one whose players were freed (a runner died
            # between freeing them and publishing the results) runs again: that re-publishes.
            log.warning("battle %s ended before it was run: not run", request.match_id)
            metrics.BATTLES.labels(request.game_mode, "ended").inc()
            return
        # Mark both players as in this battle, so a reconnect finds it (the match server marks
        # them too; this covers a match server that died right after handing the battle over).
        # Not for a player who already got this result (a battle re-run after a claim).
        await self.players.mark_battle((one, two), request.match_id, MATCH_MARKER_TTL)
        play = engines.engine(engines.CURRENT)
        outcome = play(request.player1.metadata, request.player2.metadata, request.seed)
        timeline = encode_timeline(outcome.events)
        persisting = time.perf_counter()
        try:
            recorded = await record_match(
                self.pool,
                request,
                winner_id=outcome.winner_id,
                end_reason=outcome.reason,
                turns=outcome.turns,
                pod_id=self.pod_id,
                started_at=started,
                rating=self.rating,
                catalogue=self.catalogue,
                engine_version=engines.CURRENT,
            )
        except (
            OSError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.CannotConnectNowError,
            TimeoutError,
        ) as exc:
            metrics.PERSIST_FAILURES.labels("record_match").inc()
            metrics.BATTLES.labels(request.game_mode, "retry").inc()
            raise RetryLater(f"battle {request.match_id} not recorded yet: {exc}") from exc
        except Exception:
            metrics.PERSIST_FAILURES.labels("record_match").inc()
            raise
        metrics.PERSIST_SECONDS.labels("record_match").observe(time.perf_counter() - persisting)
        fresh = recorded is not None
        if not fresh:
            log.info("match %s was recorded before; delivering its result again", request.match_id)
        await self.publish_results(
            request, outcome.winner_id, outcome.turns, timeline, recorded or {}
        )
        metrics.BATTLES.labels(request.game_mode, "recorded" if fresh else "rerun").inc()
        log.info(
            "battle %s: %s vs %s, winner %s in %d turns",
            "recorded" if fresh else "re-run",
            one,
            two,
            outcome.winner_id,
            outcome.turns,
        )
        self.completed += fresh

    async def _fail(self, request: p.BattleRequest) -> None:
        """The battle cannot be run: free both players and tell them (battle_failed); their
        result markers go, since no result will come."""
        log.error("battle %s failed for good; freeing its players", request.match_id)
        metrics.BATTLES.labels(request.game_mode, "failed").inc()
        players = [request.player1.player_id, request.player2.player_id]
        try:
            pods = await self.players.finish(request.match_id, players)
            for player in players:  # one by one: the markers live in the players' own slots
                await self.redis.delete(self.keys.player_match(player))
            await command_pods(
                self.publisher,
                self.keys,
                [
                    (
                        pod,
                        p.PodCommand(
                            command="battle_failed",
                            player_id=player,
                            match_id=request.match_id,
                            reason="failed",
                        ),
                    )
                    for player, pod in zip(players, pods, strict=True)
                ],
            )
        except Exception:  # the deadline frees them in the end
            log.exception("could not free the players of battle %s", request.match_id)

    async def publish_results(
        self,
        request: p.BattleRequest,
        winner_id: str | None,
        turns: int,
        timeline: bytes,
        profiles: Recorded,
    ) -> None:
        """End the players' battle activity and send each player's result to the pod holding
        them now (they may have reconnected elsewhere since they queued; nobody holding them:
        the result waits in the database for their reconnect)."""
        players = (request.player1, request.player2)
        current = await self.players.finish(request.match_id, [c.player_id for c in players])
        raw = msgspec.Raw(timeline)
        messages: list[tuple[str, bytes]] = []
        for (me, other), target in zip(
            ((players[0], players[1]), (players[1], players[0])), current, strict=True
        ):
            if not target:
                continue
            profile = profiles.get(me.player_id)
            messages.append(
                (
                    self.keys.battle_result(target),
                    _encoder.encode(
                        p.BattleResult(
                            match_id=request.match_id,
                            game_mode=request.game_mode,
                            player_id=me.player_id,
                            opponent_id=other.player_id,
                            seed=request.seed,
                            winner_id=winner_id,
                            turns=turns,
                            timeline=raw,
                            level=profile.level if profile else None,
                            rating=profile.rating if profile else None,
                        )
                    ),
                )
            )
        # One script call (a cluster client refuses PUBLISH in a pipeline).
        await self.publisher.publish_many(messages)
        for channel, _ in messages:
            metrics.published(self.keys.namespace, channel)

    async def drain(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.idle.wait(), timeout)
        except TimeoutError:
            log.warning("%d battles still running at the drain deadline", self.running)
