"""The match server's work: queue requests in, TryMatch on a timer, matches out.

A tick pops players under a lease, pairs them (pure code) and commits the pairs to the mode's
battle stream in one script. A match server killed at any point therefore loses nobody: before
the commit its popped players return to the queue when the lease ends, after it the battle is
durably handed to the game servers. MatchFound is a fast-path notice on Pub/Sub.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import uuid

import msgspec
import redis.asyncio as aioredis

from servers.common import protocol as p
from servers.common import queueing
from servers.common.bus import stop_if_cancelling
from servers.common.keys import GameMode, Keys
from servers.common.lua import (
    PairToCommit,
    PartyScripts,
    PlayerScripts,
    Popped,
    PublishScript,
    QueueScripts,
)
from servers.common.models import BattleSnapshot
from servers.common.players import command_pods, dequeued_notice
from servers.match.matchmakers.normal import pair_fifo
from servers.match.matchmakers.party import pair_party
from servers.match.matchmakers.ranked import Entry, Window, pair_by_rating
from servers.match.metrics import MatchMetrics

log = logging.getLogger("cardgame.match")

_enqueue_request = msgspec.json.Decoder(p.EnqueueRequest)
_dequeue_request = msgspec.json.Decoder(p.DequeueRequest)
_snapshot = msgspec.json.Decoder(BattleSnapshot)
_encoder = msgspec.json.Encoder()


def now_ms() -> int:
    return int(time.time() * 1000)


# Modes paired over their whole queue by one match server per tick (see
# lua/try_match_pop_exclusive.lua): the best opponent may be anywhere in the queue.
WHOLE_QUEUE_MODES = frozenset({GameMode.RANKED, GameMode.PARTY})
# Each match server looks for expired leases this often (seconds); leases last seconds.
REAP_INTERVAL = 0.25
# Ticket lifetime and party expiry are checked this often (seconds).
HOUSEKEEPING_INTERVAL = 0.5


class Matchmaking:
    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        batch_size: int,
        metrics: MatchMetrics,
        lease_seconds: float = 5.0,
        *,
        window: Window | None = None,
        pass_batch_size: int = 10_000,
        ticket_max_wait: float = 300.0,
        pass_interval: float = 0.2,
        battle_deadline: float = 120.0,
    ) -> None:
        self.redis, self.keys, self.batch_size, self.metrics = redis, keys, batch_size, metrics
        self.lease_ms = int(lease_seconds * 1000)
        self.scripts = QueueScripts(redis, keys)
        self.parties = PartyScripts(redis, keys)
        self.players = PlayerScripts(redis, keys)
        self.battle_deadline_ms = int(battle_deadline * 1000)
        self.window = window or Window()
        self.pass_batch_size = pass_batch_size
        self.ticket_max_wait_ms = int(ticket_max_wait * 1000)
        # A whole-queue pass at most this often, whichever match server does it; a little
        # shorter than a tick so that one match server alone passes on every tick.
        self.pass_interval_ms = max(1, int(pass_interval * 800))
        self._next_reap = 0.0
        self.maintenance = False  # kept current by the watchdog
        self.matches_formed = 0
        self.requests_handled = 0
        self.publisher = PublishScript(redis)

    # ------------------------------------------------------------ requests
    async def reply(
        self,
        pod_id: str,
        player_id: str,
        mode: str,
        request_id: str | None,
        result: p.ResultEnQueued | p.ResultDequeued | p.ResultError,
    ) -> None:
        message = p.MatchResult(
            player_id=player_id, game_mode=mode, request_id=request_id, result=result
        )
        await self.redis.publish(self.keys.match_result(pod_id), _encoder.encode(message))
        self.metrics.replied(self.keys.namespace, self.keys.match_result(pod_id), result)

    async def on_enqueue(self, data: bytes) -> None:
        self.requests_handled += 1
        try:
            req = _enqueue_request.decode(data)
        except msgspec.DecodeError as exc:
            self.metrics.requests.labels("enqueue", "malformed").inc()
            log.error("dropping a malformed enqueue request: %s", exc)
            return
        # The match server's clock orders the queue, so skew between game servers cannot.
        answer = await queueing.enqueue(
            self.scripts,
            req.game_mode,
            req.player_id,
            req.pod_id,
            _encoder.encode(req.metadata),
            req.epoch,
            now_ms(),
        )
        await self._answer("enqueue", req.player_id, req.game_mode, req.request_id, answer)

    async def on_dequeue(self, data: bytes) -> None:
        self.requests_handled += 1
        try:
            req = _dequeue_request.decode(data)
        except msgspec.DecodeError as exc:
            self.metrics.requests.labels("dequeue", "malformed").inc()
            log.error("dropping a malformed dequeue request: %s", exc)
            return
        answer = await queueing.dequeue(
            self.scripts, req.game_mode, req.player_id, req.pod_id, req.epoch, req.reason
        )
        await self._answer("dequeue", req.player_id, req.game_mode, req.request_id, answer)

    async def _answer(
        self,
        kind: str,
        player_id: str,
        mode: str,
        request_id: str | None,
        answer: queueing.Answer,
    ) -> None:
        self.metrics.requests.labels(kind, type(answer.result).__name__).inc()
        if answer.queue_size is not None:
            self.metrics.queue_size.labels(mode).set(answer.queue_size)
        await self.reply(answer.pod_id, player_id, mode, request_id, answer.result)

    # ------------------------------------------------------------ TryMatch
    async def tick(self) -> int:
        """Pop, pair and commit until the queues hold no more pairs; returns pairs formed."""
        formed = 0
        reap = time.monotonic() >= self._next_reap
        if reap:  # leases last seconds: reaping a few times a second is plenty
            self._next_reap = time.monotonic() + REAP_INTERVAL
        for mode in GameMode:
            reaped = await self.scripts.reap(mode, now_ms()) if reap else 0
            if reaped:
                self.metrics.requeued.labels(mode.value).inc(reaped)
                log.warning("requeued %d players whose match server died mid-tick", reaped)
            if mode in WHOLE_QUEUE_MODES:
                popped = await self.scripts.pop_exclusive(
                    mode, self.pass_batch_size, now_ms() + self.lease_ms, self.pass_interval_ms
                )
                formed += await self._match(mode, popped)
                continue
            while True:
                stop_if_cancelling()  # a swallowed cancel must not keep the loop going
                popped = await self.scripts.pop(mode, self.batch_size, now_ms() + self.lease_ms)
                formed += await self._match(mode, popped)
                if len(popped) < self.batch_size:
                    break
        self.matches_formed += formed
        return formed

    async def housekeeping(self) -> None:
        """Expire tickets, parties and battles past their lifetime."""
        await self.expire_tickets()
        await self.sweep_parties()
        await self.end_overdue_battles()

    async def run_housekeeping(self, interval: float = HOUSEKEEPING_INTERVAL) -> None:
        """Housekeeping forever (every match server; each removal is atomic, so once)."""
        while True:
            stop_if_cancelling()  # a swallowed cancel must not keep the loop going
            try:
                await self.housekeeping()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelling()
                log.exception("housekeeping failed")
            await asyncio.sleep(interval)

    async def expire_tickets(self) -> int:
        """Ticket lifetime: dequeue whoever waited longer than the maximum and tell them."""
        if self.ticket_max_wait_ms <= 0:
            return 0
        expired = 0
        for mode in GameMode:
            removed = await self.scripts.expire(
                mode, now_ms() - self.ticket_max_wait_ms, dequeued_notice(mode, "expired")
            )
            if not removed:
                continue
            expired += len(removed)
            self.metrics.expired.labels(mode.value).inc(len(removed))
            log.info("%d tickets expired in %s", len(removed), mode.value)
            await self.tell_dequeued(mode, removed, "expired")
        return expired

    async def tell_dequeued(
        self, mode: GameMode, players: list[tuple[str, str]], reason: p.DequeueReason
    ) -> None:
        """Tell the pods holding (player, pod) that the server took the player out of the
        queue; a player nobody holds finds the notice in their record at the next welcome."""
        await self.publisher.publish_many(
            [
                (
                    self.keys.match_result(pod),
                    _encoder.encode(
                        p.MatchResult(
                            player_id=player,
                            game_mode=mode.value,
                            result=p.ResultDequeued(reason=reason),
                        )
                    ),
                )
                for player, pod in players
                if pod
            ]
        )

    async def sweep_parties(self) -> int:
        """Delete expired parties; tell their members (and dequeue those waiting for the duel)."""
        gone = await self.parties.sweep(now_ms())
        if not gone:
            return 0
        await self.tell_dequeued(
            GameMode.PARTY, [(e.player_id, e.pod_id) for e in gone if e.dequeued], "party"
        )
        await command_pods(
            self.publisher,
            self.keys,
            [
                (
                    entry.pod_id,
                    p.PodCommand(
                        command="party_changed",
                        player_id=entry.player_id,
                        event="expired",
                        party=entry.code,
                    ),
                )
                for entry in gone
            ],
        )
        return len(gone)

    async def end_overdue_battles(self) -> int:
        """Free the players of battles past their deadline and tell their game servers."""
        freed = await self.players.overdue(now_ms())
        if not freed:
            return 0
        log.warning("ended %d battle activities past their deadline", len(freed))
        self.metrics.players_removed.labels("battle_deadline").inc(len(freed))
        await command_pods(
            self.publisher,
            self.keys,
            [
                (
                    entry.pod_id,
                    p.PodCommand(
                        command="battle_failed",
                        player_id=entry.player_id,
                        match_id=entry.match_id,
                        reason="timeout",
                    ),
                )
                for entry in freed
            ],
        )
        return len(freed)

    def _candidates(
        self, mode: GameMode, popped: list[Popped]
    ) -> tuple[list[p.PlayerCandidate], list[Popped]]:
        good: list[p.PlayerCandidate] = []
        poisoned: list[Popped] = []
        for entry in popped:
            try:
                snap = _snapshot.decode(entry.ticket)
                if snap.player_id != entry.player_id or not snap.deck or not entry.pod_id:
                    raise ValueError("ticket does not match its queue entry")
            except (msgspec.DecodeError, ValueError) as exc:
                # A poisoned entry must not block the queue: drop it and say so.
                self.metrics.poisoned.labels(mode.value).inc()
                log.error(
                    "dropped poisoned queue entry %s in %s: %s", entry.player_id, mode.value, exc
                )
                poisoned.append(entry)
                continue
            good.append(
                p.PlayerCandidate(
                    player_id=entry.player_id, score=entry.score, pod_id=entry.pod_id, metadata=snap
                )
            )
        return good, poisoned

    def pair(
        self,
        mode: GameMode,
        candidates: list[p.PlayerCandidate],
    ) -> tuple[list[tuple[p.PlayerCandidate, p.PlayerCandidate]], list[p.PlayerCandidate]]:
        """The mode's pure pairing; candidates come longest-waiting first."""
        if mode is GameMode.RANKED:
            now = now_ms()
            pairs, leftover = pair_by_rating(
                [Entry(c.player_id, c.metadata.rating, c.score, c) for c in candidates],
                now,
                self.window,
            )
            for one, two in pairs:
                self.metrics.rating_diff.observe(abs(one.metadata.rating - two.metadata.rating))
        elif mode is GameMode.PARTY:
            pairs, leftover = pair_party(
                candidates, lambda c: c.metadata.party_code, lambda c: c.player_id
            )
        else:
            pairs, leftover = pair_fifo(candidates)
        return pairs, leftover

    async def _match(self, mode: GameMode, popped: list[Popped]) -> int:
        if not popped:
            return 0
        candidates, poisoned = self._candidates(mode, popped)
        pairs, leftover = self.pair(mode, candidates)
        formed = now_ms()
        requests = [
            p.BattleRequest(
                match_id=str(uuid.uuid4()),
                game_mode=mode.value,
                seed=secrets.randbits(63),
                player1=one,
                player2=two,
                formed_at_ms=formed,
            )
            for one, two in pairs
        ]
        committed = await self.scripts.commit(
            mode,
            [
                PairToCommit(
                    r.match_id, r.player1.player_id, r.player2.player_id, _encoder.encode(r)
                )
                for r in requests
            ],
            [c.player_id for c in leftover],
            [entry.player_id for entry in poisoned],
            now_ms() + self.battle_deadline_ms,
        )
        # A poisoned ticket is gone: its player is idle again and is told so.
        await self.tell_dequeued(mode, [(e.player_id, e.pod_id) for e in poisoned], "server")
        for r in requests:
            if r.match_id in committed:  # one line per match: the start of its trail in the logs
                log.info(
                    "match formed: %s (%s) vs %s (%s)",
                    r.player1.player_id,
                    r.player1.pod_id,
                    r.player2.player_id,
                    r.player2.pod_id,
                    extra={"match_id": r.match_id},
                )
        await self._announce(
            mode, [(r, committed[r.match_id]) for r in requests if r.match_id in committed]
        )
        self.metrics.matches.labels(mode.value).inc(len(committed))
        self.metrics.matched(
            mode.value,
            now_ms(),
            [c.score for r in requests if r.match_id in committed for c in (r.player1, r.player2)],
        )
        return len(committed)

    async def _announce(
        self, mode: GameMode, committed: list[tuple[p.BattleRequest, tuple[str, str]]]
    ) -> None:
        """Fast-path notices, to the pods holding the players at the commit (a player may have
        reconnected elsewhere while being paired; nobody holding them: their next welcome says
        `in_battle`); the battle itself is already safe in the stream. Every message of the
        batch goes out in one script call (one round trip, one reply)."""
        messages: list[tuple[str, bytes]] = []
        for r, pods in committed:
            for (me, other), pod in zip(
                ((r.player1, r.player2), (r.player2, r.player1)), pods, strict=True
            ):
                if not pod:
                    continue
                messages.append(
                    (
                        self.keys.match_result(pod),
                        _encoder.encode(
                            p.MatchResult(
                                player_id=me.player_id,
                                game_mode=mode.value,
                                result=p.ResultMatchFound(
                                    match_id=r.match_id,
                                    opponent_id=other.player_id,
                                    opponent_name=other.metadata.name,
                                ),
                            )
                        ),
                    )
                )
            messages.append(
                (
                    self.keys.battle_request,
                    _encoder.encode(
                        p.BattleNotice(
                            match_id=r.match_id,
                            game_mode=mode.value,
                            player1=r.player1.player_id,
                            player2=r.player2.player_id,
                            pod1=r.player1.pod_id,
                            pod2=r.player2.pod_id,
                        )
                    ),
                )
            )
        await self.publisher.publish_many(messages)
        self.metrics.published(self.keys.namespace, (channel for channel, _ in messages))

    async def run_ticks(self, interval: float) -> None:
        """TryMatch forever; the next tick is planned after the previous one ends (no overlap)."""
        while True:
            stop_if_cancelling()  # a swallowed cancel must not keep the loop going
            started = time.perf_counter()
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                stop_if_cancelling()
                log.exception("TryMatch tick failed")
            elapsed = time.perf_counter() - started
            self.metrics.tick_seconds.observe(elapsed)
            await asyncio.sleep(max(0.0, interval - elapsed))
