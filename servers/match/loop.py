"""The match server's work: queue requests in, TryMatch on a timer, matches out."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid

import msgspec
import redis.asyncio as aioredis

from servers.common import protocol as p
from servers.common.errors import ErrorCode
from servers.common.keys import GameMode, Keys
from servers.common.lua import Popped, PublishScript, QueueScripts
from servers.common.models import BattleSnapshot
from servers.match.matchmakers.normal import pair_fifo
from servers.match.metrics import MatchMetrics

log = logging.getLogger("cardgame.match")

_enqueue_request = msgspec.json.Decoder(p.EnqueueRequest)
_dequeue_request = msgspec.json.Decoder(p.DequeueRequest)
_snapshot = msgspec.json.Decoder(BattleSnapshot)
_encoder = msgspec.json.Encoder()


class Matchmaking:
    def __init__(self, redis: aioredis.Redis, keys: Keys, batch_size: int,
                 metrics: MatchMetrics) -> None:
        self.redis, self.keys, self.batch_size, self.metrics = redis, keys, batch_size, metrics
        self.scripts = QueueScripts(redis, keys)
        self.publisher = PublishScript(redis)

    # ------------------------------------------------------------ requests
    async def reply(self, pod_id: str, player_id: str, mode: str, request_id: str | None,
                    result: p.ResultEnQueued | p.ResultDequeued | p.ResultError) -> None:
        message = p.MatchResult(player_id=player_id, game_mode=mode, request_id=request_id,
                                result=result)
        await self.redis.publish(self.keys.match_result(pod_id), _encoder.encode(message))

    async def on_enqueue(self, data: bytes) -> None:
        try:
            req = _enqueue_request.decode(data)
        except msgspec.DecodeError as exc:
            self.metrics.requests.labels("enqueue", "malformed").inc()
            log.error("dropping a malformed enqueue request: %s", exc)
            return
        try:
            mode = GameMode(req.game_mode)
        except ValueError:
            self.metrics.requests.labels("enqueue", "unknown_mode").inc()
            await self.reply(req.pod_id, req.player_id, req.game_mode, req.request_id,
                             p.ResultError(code=ErrorCode.UNKNOWN_MODE,
                                           message=f"unknown mode {req.game_mode!r}"))
            return
        # The match server's clock orders the queue, so skew between game servers cannot.
        change = await self.scripts.enqueue(mode, req.player_id, int(time.time() * 1000),
                                            _encoder.encode(req.metadata))
        self.metrics.queue_size.labels(mode.value).set(change.queue_size)
        if change.changed:
            self.metrics.requests.labels("enqueue", "queued").inc()
            result: p.ResultEnQueued | p.ResultError = p.ResultEnQueued(
                queue_size=change.queue_size)
        else:
            self.metrics.requests.labels("enqueue", "already_queued").inc()
            result = p.ResultError(code=ErrorCode.ALREADY_QUEUED,
                                   message="the player is already in the queue")
        await self.reply(req.pod_id, req.player_id, mode.value, req.request_id, result)

    async def on_dequeue(self, data: bytes) -> None:
        try:
            req = _dequeue_request.decode(data)
        except msgspec.DecodeError as exc:
            self.metrics.requests.labels("dequeue", "malformed").inc()
            log.error("dropping a malformed dequeue request: %s", exc)
            return
        try:
            mode = GameMode(req.game_mode)
        except ValueError:
            result: p.ResultDequeued | p.ResultError = p.ResultError(
                code=ErrorCode.UNKNOWN_MODE, message=f"unknown mode {req.game_mode!r}")
        else:
            change = await self.scripts.dequeue(mode, req.player_id)
            self.metrics.queue_size.labels(mode.value).set(change.queue_size)
            if change.changed:
                result = p.ResultDequeued(reason=req.reason)
            else:
                result = p.ResultError(code=ErrorCode.NOT_QUEUED,
                                       message="the player is not in the queue")
        self.metrics.requests.labels("dequeue", type(result).__name__).inc()
        await self.reply(req.pod_id, req.player_id, req.game_mode, req.request_id, result)

    # ------------------------------------------------------------ TryMatch
    async def tick(self) -> int:
        """Pop, pair and announce until the queues hold no more pairs; returns pairs formed."""
        formed = 0
        for mode in GameMode:
            while True:
                popped = await self.scripts.pop(mode, self.batch_size)
                formed += await self._match(mode, popped)
                if len(popped) < self.batch_size:
                    break
        return formed

    def _candidates(self, mode: GameMode, popped: list[Popped]) -> list[p.PlayerCandidate]:
        out = []
        for entry in popped:
            try:
                snap = _snapshot.decode(entry.ticket)
                if snap.player_id != entry.player_id or not snap.deck:
                    raise ValueError("ticket does not match its queue entry")
            except (msgspec.DecodeError, ValueError) as exc:
                # A poisoned entry must not block the queue: drop it and say so.
                self.metrics.poisoned.labels(mode.value).inc()
                log.error("dropped poisoned queue entry %s in %s: %s", entry.player_id,
                          mode.value, exc)
                continue
            out.append(p.PlayerCandidate(player_id=entry.player_id, score=entry.score,
                                         pod_id=snap.pod_id, metadata=snap))
        return out

    async def _match(self, mode: GameMode, popped: list[Popped]) -> int:
        if not popped:
            return 0
        pairs, leftover = pair_fifo(self._candidates(mode, popped))
        # Every message of the batch goes out in one script call (one round trip, one reply).
        messages: list[tuple[str, bytes]] = []
        for one, two in pairs:
            match_id = str(uuid.uuid4())
            for me, other in ((one, two), (two, one)):
                messages.append((self.keys.match_result(me.pod_id), _encoder.encode(p.MatchResult(
                    player_id=me.player_id, game_mode=mode.value,
                    result=p.ResultMatchFound(match_id=match_id, opponent_id=other.player_id,
                                              opponent_name=other.metadata.name)))))
            # After MatchFound, so that a session never sees its result before its match.
            messages.append((self.keys.battle_request, _encoder.encode(p.BattleRequest(
                match_id=match_id, game_mode=mode.value, seed=secrets.randbits(63),
                player1=one, player2=two))))
        await self.publisher.publish_many(messages)
        for single in leftover:  # back with the original enqueue time: keeps its place
            await self.scripts.enqueue(mode, single.player_id, single.score,
                                       _encoder.encode(single.metadata))
        self.metrics.matches.labels(mode.value).inc(len(pairs))
        return len(pairs)

    async def run_ticks(self, interval: float) -> None:
        """TryMatch forever; the next tick is planned after the previous one ends (no overlap)."""
        while True:
            started = time.perf_counter()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("TryMatch tick failed")
            elapsed = time.perf_counter() - started
            self.metrics.tick_seconds.observe(elapsed)
            await asyncio.sleep(max(0.0, interval - elapsed))
