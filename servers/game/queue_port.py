"""The sessions' way to the match servers: enqueue and dequeue requests on the request streams,
each carrying the epoch of the connection that asked (a request of a replaced connection is
refused by the match server's script)."""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

import msgspec

from servers.common import bus
from servers.common import protocol as p
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import GameMode
from servers.common.lua import Standing
from servers.game import lobby
from servers.game.pod import Pod
from servers.game.sessions import Session


class QueuePort:
    """Implements the sessions' MatchPort."""

    def __init__(self, pod: Pod) -> None:
        self.pod = pod

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.pod.spawn(work)

    async def standing(self, session: Session) -> Standing:
        return await self.pod.players.standing(session.player_id)

    async def enqueue(self, session: Session, request_id: str, mode: GameMode) -> None:
        pod = self.pod
        if pod.draining:
            raise GameError(ErrorCode.SERVER_DRAINING)
        party_code = await pod.parties.ticket_party(session.player_id, mode)
        # The battle snapshot comes from the database, never from the client.
        snapshot = await lobby.battle_snapshot(pod.pool, int(session.player_id), pod.pod_id)
        if party_code:
            snapshot = msgspec.structs.replace(snapshot, party_code=party_code)
        await bus.stream_add(
            pod.redis,
            pod.keys.enqueue_requests,
            p.EnqueueRequest(
                request_id=request_id,
                player_id=session.player_id,
                game_mode=mode.value,
                pod_id=pod.pod_id,
                metadata=snapshot,
                enqueued_at_ms=int(time.time() * 1000),
                epoch=session.epoch,
            ),
        )

    async def dequeue(
        self, session: Session, request_id: str, mode: GameMode, reason: p.DequeueReason
    ) -> None:
        pod = self.pod
        await bus.stream_add(
            pod.redis,
            pod.keys.dequeue_requests,
            p.DequeueRequest(
                request_id=request_id,
                player_id=session.player_id,
                game_mode=mode.value,
                pod_id=pod.pod_id,
                reason=reason,
                epoch=session.epoch,
            ),
        )
