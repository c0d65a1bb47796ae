"""The sessions' way into the queues: this game server runs the enqueue and dequeue scripts for
the players it holds, each call fenced by the epoch of the connection that asked (a request of
a replaced connection is refused in the script), and hands the answer to the session.

The match servers only pair. Running the request here costs one Redis round trip; through the
match servers' request streams it cost a stream write, a read by a match server, the script
and a Pub/Sub reply (docs/architecture.md, "Queue requests")."""

from __future__ import annotations

import time
from collections.abc import Coroutine
from typing import Any

import msgspec

from servers.common import bus, queueing
from servers.common import protocol as p
from servers.common.errors import ErrorCode, GameError
from servers.common.keys import GameMode
from servers.common.lua import QueueScripts, Standing
from servers.game import lobby, metrics
from servers.game.pod import Pod
from servers.game.sessions import Session

_ticket = msgspec.json.Encoder()


class QueuePort:
    """Implements the sessions' MatchPort."""

    def __init__(self, pod: Pod) -> None:
        self.pod = pod
        self.scripts = QueueScripts(pod.redis, pod.keys)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        self.pod.spawn(work)

    async def standing(self, session: Session) -> Standing:
        return await self.pod.players.standing(session.player_id)

    async def enqueue(self, session: Session, request_id: str, mode: GameMode) -> None:
        pod = self.pod
        if pod.draining:
            raise GameError(ErrorCode.SERVER_DRAINING)
        # The party duel needs the party's code on the ticket; for every other mode the script
        # itself refuses a party member (IN_PARTY).
        party_code = (
            await pod.parties.ticket_party(session.player_id, mode)
            if mode is GameMode.PARTY
            else ""
        )
        # The battle snapshot comes from the database, never from the client.
        snapshot = await lobby.snapshot_of(pod.pool, session, pod.pod_id, pod.catalogue_version)
        if party_code:
            snapshot = msgspec.structs.replace(snapshot, party_code=party_code)
        answer = await queueing.enqueue(
            self.scripts,
            mode.value,
            session.player_id,
            pod.pod_id,
            _ticket.encode(snapshot),
            session.epoch,
            int(time.time() * 1000),
        )
        await self._answer("enqueue", session, request_id, mode, answer)

    async def dequeue(
        self, session: Session, request_id: str, mode: GameMode, reason: p.DequeueReason
    ) -> None:
        answer = await queueing.dequeue(
            self.scripts, mode.value, session.player_id, self.pod.pod_id, session.epoch, reason
        )
        await self._answer("dequeue", session, request_id, mode, answer)

    async def _answer(
        self,
        kind: str,
        session: Session,
        request_id: str,
        mode: GameMode,
        answer: queueing.Answer,
    ) -> None:
        """To the session, as a match server's answer would come (a late one is ignored, a
        MatchFound that came first is kept); to the pod holding the player if that is not
        this one any more."""
        metrics.QUEUE_REQUESTS.labels(kind, type(answer.result).__name__).inc()
        message = p.MatchResult(
            player_id=session.player_id,
            game_mode=mode.value,
            request_id=request_id,
            result=answer.result,
        )
        if answer.pod_id in ("", self.pod.pod_id):
            session.on_match_result(message)
            return
        channel = self.pod.keys.match_result(answer.pod_id)
        await bus.publish(self.pod.redis, channel, message)
        metrics.published(self.pod.keys.namespace, channel)
