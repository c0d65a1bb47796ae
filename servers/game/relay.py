"""WebSocket sessions <-> Redis: queue requests out, match and battle results in, reconnects.

Who holds a player, and what the player is doing, is the player's record in Redis
(lua/prelude.lua). A connection takes the player with `attach.lua` (a new fencing epoch; a
queued player's ticket now points here, the old pod is told to let go), every request carries
that epoch, and a session forgotten after its reconnect grace lets the player go with
`detach.lua`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import signal
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import msgspec
import redis.asyncio as aioredis
from redis.exceptions import WatchError

from servers.common import bus
from servers.common import protocol as p
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import PVE_MODE, GameMode, Keys
from servers.common.lua import Busy, PlayerScripts, StaleEpoch
from servers.common.players import busy_error, dequeued_notice
from servers.common.ratelimit import ActivityLimits
from servers.game import lobby, metrics, pve
from servers.game.parties import Parties
from servers.game.parties import decode as decode_party
from servers.game.parties import message as party_message
from servers.game.persistence import load_result
from servers.game.sessions import CLOSE_KICKED, Connection, QueueState, Registry, Session

log = logging.getLogger("cardgame.game.relay")

_match_result = msgspec.json.Decoder(p.MatchResult)
_battle_result = msgspec.json.Decoder(p.BattleResult)
_command = msgspec.json.Decoder(p.PodCommand)
_notice = msgspec.json.Decoder(p.Dequeued)
_encoder = msgspec.json.Encoder()
# What the welcome says of a session's state.
_WELCOME_STATE: dict[QueueState, p.SessionState] = {
    QueueState.QUEUED: "queued",
    QueueState.DEQUEUING: "queued",
    QueueState.ENQUEUING: "queued",
    QueueState.IN_BATTLE: "in_battle",
}
DELIVERED_TTL = 3_600
# A battle result that overtook its MatchFound waits this long for it (see on_message).
EARLY_RESULT_WAIT = 2.0


class Relay:
    """Implements the sessions' MatchPort and routes results to the registry's sessions."""

    def __init__(
        self,
        redis: aioredis.Redis,
        pool: asyncpg.Pool,
        keys: Keys,
        pod_id: str,
        reply_timeout: float,
        grace: float,
        *,
        party_ttl: float = 1800.0,
        gzip_threshold: int = 4096,
        history_limit: int = 50,
        battle_deadline: float = 120.0,
    ) -> None:
        self.redis, self.pool, self.keys, self.pod_id = redis, pool, keys, pod_id
        self.grace = grace
        self.history_limit = history_limit
        self.registry = Registry(
            self, reply_timeout, grace, on_forget=self._forgotten, gzip_threshold=gzip_threshold
        )
        self.players = PlayerScripts(redis, keys)
        self.battle_deadline_ms = int(battle_deadline * 1000)
        self.parties = Parties(redis, keys, party_ttl)
        self.draining = False
        self.early: dict[str, p.BattleResult] = {}  # player id -> result ahead of MatchFound
        # Runs a battle on this game server (PvE); set by the app to its BattleRunner.
        self.run_battle: Callable[[p.BattleRequest], Awaitable[None]] | None = None
        # Per-player activity limits (PvE battles, party code guesses); set by the app.
        self.limits: ActivityLimits | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------ MatchPort
    async def enqueue(self, session: Session, request_id: str, mode: GameMode) -> None:
        if self.draining:
            raise GameError(ErrorCode.SERVER_DRAINING)
        party_code = await self.parties.ticket_party(session.player_id, mode)
        snapshot = await lobby.battle_snapshot(self.pool, int(session.player_id), self.pod_id)
        if party_code:
            snapshot = msgspec.structs.replace(snapshot, party_code=party_code)
        await bus.stream_add(
            self.redis,
            self.keys.enqueue_requests,
            p.EnqueueRequest(
                request_id=request_id,
                player_id=session.player_id,
                game_mode=mode.value,
                pod_id=self.pod_id,
                metadata=snapshot,
                enqueued_at_ms=int(time.time() * 1000),
                epoch=session.epoch,
            ),
        )

    async def dequeue(
        self, session: Session, request_id: str, mode: GameMode, reason: p.DequeueReason
    ) -> None:
        await bus.stream_add(
            self.redis,
            self.keys.dequeue_requests,
            p.DequeueRequest(
                request_id=request_id,
                player_id=session.player_id,
                game_mode=mode.value,
                pod_id=self.pod_id,
                reason=reason,
                epoch=session.epoch,
            ),
        )

    # ------------------------------------------------------------ connections
    async def connect(
        self, player_id: str, name: str, conn: Connection
    ) -> tuple[Session, bool, p.BattleResult | p.Dequeued | None]:
        """Attach a connection and restore where the player stands, wherever they were.

        Returns the session, whether it was resumed, and what happened while the player was
        away, to send right after the welcome: a finished battle's result, or a dequeue."""
        session, resumed = self.registry.attach(player_id, name, conn)
        attached = await self.players.attach(player_id, self.pod_id, int(time.time() * 1000))
        session.epoch = attached.epoch
        moved_from = attached.previous_pod
        if moved_from and moved_from != self.pod_id:
            await bus.publish(
                self.redis,
                self.keys.pod_control(moved_from),
                p.PodCommand(command="player_moved", player_id=player_id, to_pod=self.pod_id),
            )
            metrics.published(self.keys.namespace, self.keys.pod_control(moved_from))
        session.follow(attached.standing)
        missed: p.BattleResult | p.Dequeued | None = None
        if session.state is QueueState.IN_BATTLE and session.match_id:
            missed = await load_result(self.pool, session.match_id, session.player_id)
        elif session.state is QueueState.IDLE:
            missed = await self._owed_result(session)
            if missed is None and attached.notice:  # dequeued while nobody held the player
                missed = _notice.decode(attached.notice)
        return session, resumed or bool(moved_from and moved_from != self.pod_id), missed

    async def _owed_result(self, session: Session) -> p.BattleResult | None:
        """The result of a battle that ended while the player was away, if it is owed (its
        marker is set until delivered); a marker of a battle that ended without a result (it
        failed or overran its deadline) is dropped."""
        marker = self.keys.player_match(session.player_id)
        match = await self.redis.get(marker)
        if match is None:
            return None
        result = await load_result(self.pool, bus.text(match), session.player_id)
        if result is None:
            await self.redis.delete(marker)
            return None
        session.resume_battle(result.match_id)  # settled by the delivery that follows
        return result

    def welcome(self, session: Session, resumed: bool) -> p.Welcome:
        state = _WELCOME_STATE.get(session.state, "idle")
        return p.Welcome(
            protocol=p.PROTOCOL_VERSION,
            player_id=session.player_id,
            name=session.name,
            pod_id=self.pod_id,
            resumed=resumed,
            state=state,
            mode=session.mode.value if session.mode else None,
            match_id=session.match_id,
        )

    async def deliver(self, session: Session, result: p.BattleResult, again: bool = False) -> None:
        """Send a battle result once per player, across pods and re-runs of the battle.

        `again` re-sends a result marked delivered whose delivery never completed (the pod that
        sent it died before clearing the player's battle marker): the frame may not have
        reached the client, so it comes again, with the same match id (at least once)."""
        if session.conn is None:
            # Nobody to send it to: settle the session (so it can be forgotten); the match
            # marker stays, and a reconnect delivers the result from the database.
            session.on_battle_result(result)
            return
        first = await self.redis.set(
            self.keys.delivered(result.player_id, result.match_id), 1, nx=True, ex=DELIVERED_TTL
        )
        if not first and not again:  # delivered before (a re-run battle): settle, send nothing
            session.settle_battle(result.match_id)
            return
        session.on_battle_result(result)
        log.info(
            "battle result delivered",
            extra={"player_id": result.player_id, "match_id": result.match_id},
        )
        marker = self.keys.player_match(result.player_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            await pipe.watch(marker)
            if await pipe.get(marker) == result.match_id.encode():
                pipe.multi()
                pipe.delete(marker)
                # The marker changed meanwhile: cleared by a concurrent delivery of this result
                # (a reconnect re-sending it), or a newer match: either way not ours to delete.
                with contextlib.suppress(WatchError):
                    await pipe.execute()

    # ------------------------------------------------------------ bus
    def channels(self) -> list[str]:
        return [
            self.keys.match_result(self.pod_id),
            self.keys.battle_result(self.pod_id),
            self.keys.pod_control(self.pod_id),
        ]

    async def on_message(self, channel: str, data: bytes) -> None:
        if channel == self.keys.match_result(self.pod_id):
            result = _match_result.decode(data)
            session = self.registry.get(result.player_id)
            if session is not None:
                session.on_match_result(result)
                if isinstance(result.result, p.ResultMatchFound):
                    await self._deliver_early(result.player_id, result.result.match_id)
        elif channel == self.keys.battle_result(self.pod_id):
            battle = _battle_result.decode(data)
            session = self.registry.get(battle.player_id)
            if session is None:
                return
            if (
                session.state in (QueueState.ENQUEUING, QueueState.QUEUED, QueueState.DEQUEUING)
                and session.match_id != battle.match_id
            ):
                # The result overtook its MatchFound: they are published by different processes
                # and, on a Redis Cluster, may reach us through different nodes, in any order.
                # Hold it until MatchFound arrives (or briefly: Pub/Sub may have lost it).
                self.early[battle.player_id] = battle
                asyncio.get_running_loop().call_later(
                    EARLY_RESULT_WAIT,
                    lambda: asyncio.ensure_future(
                        self._deliver_early(battle.player_id, battle.match_id)
                    ),
                )
                return
            await self.deliver(session, battle)
        else:
            await self.on_command(_command.decode(data))

    async def _deliver_early(self, player_id: str, match_id: str) -> None:
        battle = self.early.get(player_id)
        if battle is None or battle.match_id != match_id:
            return
        del self.early[player_id]
        session = self.registry.get(player_id)
        if session is not None:
            await self.deliver(session, battle)

    async def on_command(self, command: p.PodCommand) -> None:
        session = self.registry.get(command.player_id) if command.player_id else None
        if command.command == "party_changed" and session is not None:
            if command.event == "expired":
                session.send(
                    p.Party(
                        code=command.party or "",
                        owner_id="",
                        members=[],
                        expires_at_ms=0,
                        event="expired",
                    )
                )
            elif command.party:
                session.send(party_message(decode_party(command.party), command.event or "state"))
        elif command.command == "battle_failed" and session is not None:
            session.on_battle_failed(command.match_id or "", command.reason or "failed")
        elif command.command == "player_moved" and session is not None:
            if command.to_pod != self.pod_id:
                session.release()
        elif command.command == "disconnect" and session is not None and session.conn:
            session.send_error(ErrorCode.SESSION_REPLACED, "disconnected by an operator")
            session.conn.close(CLOSE_KICKED, "disconnected by an operator")
        elif command.command == "drain":
            log.warning("drain requested by an operator")
            os.kill(os.getpid(), signal.SIGTERM)  # the same graceful path as a deploy

    # ------------------------------------------------------------ parties, PvE
    def _forgotten(self, session: Session) -> None:
        """A session ended here. Unless the player moved to another pod, the player's record
        lets them go (a queued player is dequeued, with a notice for the next welcome) and
        they leave their party: the reconnect grace has passed without them coming back."""
        if not session.moved:
            self._spawn(self._let_go(session.player_id, session.epoch))

    def _spawn(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _let_go(self, player_id: str, epoch: int) -> None:
        notices = {mode: dequeued_notice(mode, "disconnected") for mode in GameMode}
        try:
            await self.players.detach(player_id, epoch, notices)
            if await self.players.holder(player_id):
                return  # reconnected meanwhile, here or elsewhere: the party stays
            if await self.parties.current(player_id) is not None:
                await self.parties.leave(player_id)
                log.info("%s left their party on disconnect", player_id)
        except GameError:
            pass
        except Exception:
            log.exception("could not let %s go", player_id)

    async def close(self) -> None:
        """Wait for the letting-go of forgotten sessions still under way (at shutdown)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def start_pve(self, session: Session, difficulty: str, ref: str | None) -> None:
        """A battle against the AI on this game server: MatchFound now, the result as for any
        battle (recorded once, delivered once)."""
        if self.draining:
            raise GameError(ErrorCode.SERVER_DRAINING)
        session.ensure_idle()
        if self.run_battle is None:
            raise GameError(ErrorCode.INTERNAL, "this server runs no battles")
        if self.limits is not None:  # before any database work: a refusal costs one script
            await self.limits.pve(session.player_id)
        me = await lobby.battle_snapshot(self.pool, int(session.player_id), self.pod_id)
        ai = await pve.ai_snapshot(self.pool, difficulty, self.pod_id)
        if session.state is not QueueState.IDLE:  # changed while we read the database
            raise GameError(ErrorCode.REQUEST_IN_PROGRESS)
        now = int(time.time() * 1000)
        match_id = str(uuid.uuid4())
        try:
            await self.players.begin_pve(
                session.player_id, session.epoch, match_id, now + self.battle_deadline_ms, PVE_MODE
            )
        except StaleEpoch:
            raise GameError(ErrorCode.SESSION_REPLACED) from None
        except Busy as busy:
            refusal = busy_error(busy)
            session.follow(busy.standing)
            raise GameError(refusal.code, refusal.message) from None
        request = p.BattleRequest(
            match_id=match_id,
            game_mode=PVE_MODE,
            seed=secrets.randbits(63),
            player1=p.PlayerCandidate(
                player_id=me.player_id, score=now, pod_id=self.pod_id, metadata=me
            ),
            player2=p.PlayerCandidate(
                player_id=ai.player_id, score=now, pod_id=self.pod_id, metadata=ai
            ),
        )
        session.resume_battle(request.match_id)
        session.send(
            p.MatchFound(
                id=ref,
                match_id=request.match_id,
                mode=PVE_MODE,
                opponent_id=ai.player_id,
                opponent_name=ai.name,
            )
        )
        # A failure ends the battle for the player (battle_failed) inside the runner.
        await self.run_battle(request)
